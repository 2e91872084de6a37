"""`ml-eval`: the one entry point the Makefile, CI and users call."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

from ml_eval import bench, graph, report, roles, rules
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


def prepare_sources(warehouse: wh.Warehouse) -> None:
    """Make sure every table dbt reads as a source exists, even before the first model run:
    MLflow's (created by MLflow itself) and the producer's prediction tables."""
    from ml_eval import predictions, tracking

    tracking.ensure_store(warehouse, os.environ.get("ML_EVAL_MLFLOW_SCHEMA") or "mlflow")
    with warehouse.connect() as conn:
        predictions.ensure_tables(conn)


def cmd_build(args: argparse.Namespace) -> None:
    """`dbt build` (and the docs) over whatever the warehouse holds; no model is trained."""
    warehouse = _warehouse(args)
    print(f"warehouse: {_describe(warehouse)}", flush=True)
    prepare_sources(warehouse)
    warn = ["--warn-error"] if args.warn_error else []
    project = Path(args.project_dir) if getattr(args, "project_dir", None) else wh.PROJECT_DIR
    run_dbt(["build", *warn], warehouse, project)
    if args.docs:
        _docs(warehouse, project)


def _docs(warehouse: wh.Warehouse, project: Path) -> None:
    run_dbt(["docs", "generate"], warehouse, project)
    run_dbt(["docs", "generate", "--static"], warehouse, project)
    print(f"docs: {wh.PROJECT_DIR / 'target' / 'static_index.html'}")


def _train(args: argparse.Namespace, warehouse: wh.Warehouse) -> None:
    from ml_eval.train import Settings, train  # imports scikit-learn and MLflow: only when training

    settings = Settings.from_env(
        experiment=getattr(args, "experiment", None), registered_model=getattr(args, "registered_model", None)
    )
    train(warehouse, settings, report=lambda line: print(line, flush=True))


def cmd_train(args: argparse.Namespace) -> None:
    """Train the candidate models on the seeded data, track them in MLflow, store predictions."""
    warehouse = _warehouse(args)
    print(f"warehouse: {_describe(warehouse)}", flush=True)
    _train(args, warehouse)


def cmd_demo(args: argparse.Namespace) -> None:
    """Command 1 of the README: everything from nothing on the configured warehouse.

    The seeds are loaded with their tests (`dbt build --select resource_type:seed`, not a bare
    `dbt seed`), so a bad seed is quarantined before any model trains on it; then the models
    train, then `dbt build` builds and tests everything over the seeds, predictions and MLflow.
    """
    warehouse = _warehouse(args)
    print(f"warehouse: {_describe(warehouse)}", flush=True)
    warn = ["--warn-error"] if args.warn_error else []
    run_dbt(["build", "--select", "resource_type:seed", "--indirect-selection", "cautious", *warn], warehouse)
    _train(args, warehouse)
    run_dbt(["build", *warn], warehouse)
    if args.docs:
        _docs(warehouse, wh.PROJECT_DIR)
        from ml_eval.report import build_report

        print(f"report: {build_report(warehouse)}")


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
    train = add("train", cmd_train, "train the models, track them in MLflow, store their predictions")
    train.add_argument("--experiment", help="MLflow experiment (default: $ML_EVAL_EXPERIMENT or wine-classification)")
    train.add_argument(
        "--registered-model", help="registered model (default: $ML_EVAL_REGISTERED_MODEL or wine-classifier)"
    )
    demo = add("demo", cmd_demo, "the main job: load the seeds, train, build, test, document (README command 1)")
    demo.add_argument("--fresh", action="store_true", help="drop and recreate the database first")
    demo.add_argument("--warn-error", action="store_true", help="treat dbt warnings as errors")
    demo.add_argument("--no-docs", dest="docs", action="store_false", help="skip the docs")
    sub.add_parser("stop", help="stop the embedded PostgreSQL").set_defaults(func=cmd_stop)
    rules_command = rules.add_command(sub)
    rules_command.add_argument("--database", help="database name (default: $PGDATABASE or ml_eval)")
    rules_command.add_argument("--no-parse", dest="parse", action="store_false", help="use the existing manifest")
    rules_command.set_defaults(func=cmd_rules)
    report.add_command(sub)
    graph.add_command(sub)
    roles.add_command(sub)
    bench.add_command(sub)
    return top


def cmd_rules(args: argparse.Namespace) -> int:
    """`dbt parse`, then the structure rules over the manifest it wrote."""
    if args.parse:
        run_dbt(["parse"], _warehouse(args))
    return rules.run(args.manifest, args.catalog)


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
