"""`ml-eval`: the one entry point the Makefile, CI and users call."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

from ml_eval import warehouse as wh
from ml_eval.dbt import run_dbt
from ml_eval.errors import UserError

log = logging.getLogger("ml_eval")


def _warehouse(args: argparse.Namespace) -> wh.Warehouse:
    env = dict(os.environ)
    if getattr(args, "database", None):
        env["PGDATABASE"] = args.database
    warehouse = wh.resolve(env)
    wh.ensure_database(warehouse, fresh=getattr(args, "fresh", False))
    os.environ.update(warehouse.env())
    return warehouse


def cmd_env(args: argparse.Namespace) -> None:
    for key, value in _warehouse(args).env().items():
        print(f"export {key}={shlex.quote(value)}")


def cmd_exec(args: argparse.Namespace) -> int:
    if not args.command:
        raise UserError("exec needs a command, e.g. `ml-eval exec -- dbt build`")
    _warehouse(args)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    return subprocess.call(args.command, cwd=wh.PROJECT_DIR)


def cmd_seeds(args: argparse.Namespace) -> None:
    from ml_eval.wine import write_seeds

    for path in write_seeds(Path(args.directory)):
        print(f"wrote {path}")


def cmd_lint(args: argparse.Namespace) -> int:
    _warehouse(args)  # sqlfluff's dbt templater needs a reachable database
    return subprocess.call(
        [sys.executable, "-m", "sqlfluff", "lint", "models", "tests", "analyses", "macros"],
        cwd=wh.PROJECT_DIR,
    )


def cmd_build(args: argparse.Namespace) -> None:
    """The main job: load the seeds, build and test every model, generate the docs."""
    warehouse = _warehouse(args)
    print(f"warehouse: {_describe(warehouse)}", flush=True)
    warn = ["--warn-error"] if args.warn_error else []
    project = Path(args.project_dir) if getattr(args, "project_dir", None) else wh.PROJECT_DIR
    run_dbt(["build", *warn], warehouse, project)
    if args.docs:
        run_dbt(["docs", "generate"], warehouse, project)
        run_dbt(["docs", "generate", "--static"], warehouse, project)
        print(f"docs: {wh.PROJECT_DIR / 'target' / 'static_index.html'}")


def cmd_demo(args: argparse.Namespace) -> None:
    """Command 1 of the README: everything from nothing on the configured warehouse."""
    args.fresh, args.warn_error, args.docs = False, False, True
    cmd_build(args)


def cmd_stop(args: argparse.Namespace) -> None:
    """Stop the embedded PostgreSQL if it runs (a no-op on a real server)."""
    pid_file = wh.EMBEDDED_DIR / "postmaster.pid"
    if not pid_file.exists():
        print("the embedded PostgreSQL is not running")
        return
    pid = int(pid_file.read_text().split()[0])
    os.kill(pid, 15)
    print(f"stopped the embedded PostgreSQL (pid {pid})")


def _describe(warehouse: wh.Warehouse) -> str:
    kind = "embedded PostgreSQL" if warehouse.embedded else "PostgreSQL"
    return f"{kind} at {warehouse.host}:{warehouse.port}, database {warehouse.database}"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ml-eval", description=__doc__)
    top.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = top.add_subparsers(dest="name", required=True)

    def add(name: str, func, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(func=func)
        command.add_argument("--database", help="database name (default: $PGDATABASE or ml_eval)")
        return command

    add("env", cmd_env, "print the PG* variables of the warehouse (starts the embedded one)")
    run = add("exec", cmd_exec, "run a command with the PG* variables set")
    run.add_argument("command", nargs=argparse.REMAINDER)
    seeds = add("seeds", cmd_seeds, "write the Wine seed CSVs from scikit-learn's copy")
    seeds.add_argument("--directory", default=str(wh.PROJECT_DIR / "seeds" / "dataset"))
    add("lint", cmd_lint, "sqlfluff lint the SQL with the dbt templater")
    build = add("build", cmd_build, "dbt build, then dbt docs generate")
    build.add_argument("--fresh", action="store_true", help="drop and recreate the database first")
    build.add_argument("--warn-error", action="store_true", help="treat dbt warnings as errors")
    build.add_argument("--no-docs", dest="docs", action="store_false", help="skip the docs")
    build.add_argument("--project-dir", help="another copy of the dbt project (tests use this)")
    add("demo", cmd_demo, "the main job: build, test, document (README command 1)")
    sub.add_parser("stop", help="stop the embedded PostgreSQL").set_defaults(func=cmd_stop)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args) or 0
    except UserError as exc:
        print(f"ml-eval: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
