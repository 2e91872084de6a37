"""The one exception type a user sees: a one-line message they can act on."""


class UserError(Exception):
    """A problem with the input or the environment, reported as one line and exit code 2."""
