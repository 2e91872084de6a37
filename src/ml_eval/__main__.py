"""`python -m ml_eval`: the same as the `ml-eval` command."""

import sys

from ml_eval.cli import main

sys.exit(main())
