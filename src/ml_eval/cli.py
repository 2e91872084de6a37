"""`ml-eval`: the one entry point the Makefile, CI and users call.

Every command is registered the same way: a function `(args, config) -> exit code` under
`@command(name, help, *arguments)`. The configuration (`ml_eval.config.Config`) is resolved
once, before the command runs, from the flags, the environment and the dbt project's vars.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ml_eval import preflight
from ml_eval import warehouse as wh
from ml_eval.config import Config
from ml_eval.dbt import run_dbt
from ml_eval.errors import UserError

log = logging.getLogger("ml_eval")

Handler = Callable[[argparse.Namespace, Config], "int | None"]


@dataclass(frozen=True)
class Argument:
    flags: tuple[str, ...]
    options: dict


def arg(*flags: str, **options) -> Argument:
    """An argument of a command, as argparse's add_argument takes it."""
    return Argument(flags, options)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: Handler
    arguments: tuple[Argument, ...]


COMMANDS: dict[str, Command] = {}


def command(name: str, help_text: str, *arguments: Argument) -> Callable[[Handler], Handler]:
    """Register a sub-command of `ml-eval`."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, help_text, handler, arguments)
        return handler

    return register


# arguments several commands share
FRESH = arg("--fresh", action="store_true", help="drop and recreate the database first")
WARN_ERROR = arg("--warn-error", action="store_true", help="treat dbt warnings as errors")
NO_DOCS = arg("--no-docs", dest="docs", action="store_false", help="skip the docs (and the report)")
EXPERIMENT = arg("--experiment", help="MLflow experiment (default: $ML_EVAL_EXPERIMENT or wine-classification)")
REGISTERED_MODEL = arg(
    "--registered-model", help="registered model (default: $ML_EVAL_REGISTERED_MODEL or wine-classifier)"
)


# --- helpers the commands share -----------------------------------------------------------


def _warehouse(args: argparse.Namespace, config: Config, *, create: bool = True) -> wh.Warehouse:
    """The warehouse (the embedded one is started when PGHOST is unset), its database created
    (or, without `create`, required to exist); this process's environment then points libpq,
    dbt and MLflow at it."""
    warehouse = wh.resolve(config)
    if not create:
        preflight.require_database(warehouse)
    else:
        fresh = getattr(args, "fresh", False)
        if fresh:  # never drop the database under another build
            preflight.refuse_if_running(warehouse, args.name)
        wh.ensure_database(warehouse, fresh=fresh)
    os.environ.update(warehouse.env())
    return warehouse


def _describe(warehouse: wh.Warehouse) -> str:
    kind = "embedded PostgreSQL" if warehouse.embedded else "PostgreSQL"
    return f"{kind} at {warehouse.host}:{warehouse.port}, database {warehouse.database}"


def _announce(warehouse: wh.Warehouse, config: Config) -> None:
    print(f"project: {config.project_dir}", flush=True)
    print(f"warehouse: {_describe(warehouse)}", flush=True)


def _executable(name: str) -> str:
    """A program of this tool's environment (dbt, sqlfluff) before any other on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise UserError(f"command not found: {name}")
    return found


def _docs(warehouse: wh.Warehouse, config: Config) -> None:
    run_dbt(["docs", "generate"], warehouse, config)
    run_dbt(["docs", "generate", "--static"], warehouse, config)
    print(f"docs: {config.target_dir / 'static_index.html'}")


def _report(warehouse: wh.Warehouse, config: Config, out_path: Path | None = None) -> Path:
    from ml_eval.consumers.report import build_report

    out = out_path or config.target_dir / "report" / "index.html"
    return build_report(warehouse, schema=config.published_schema, out_path=out)


def _mlflow_target(warehouse: wh.Warehouse, config: Config, command: str) -> str | None:
    """Where `command` has MLflow write its runs: None for the warehouse's MLflow schema (refused
    when that schema is sync-mlflow's copy, or of an untested revision), else the tracking URI
    of the store ML_EVAL_MLFLOW_URI names (refused when the warehouse's schema holds MLflow's
    own store, which the sync after training could not replace)."""
    from ml_eval import mlflow_sync

    if not config.mlflow_uri:
        mlflow_sync.refuse_writes_to_copy(warehouse, config.mlflow_schema, command)
        preflight.refuse_untested_revision(warehouse, config)
        return None
    source = mlflow_sync.source_from_config(config, must_exist=False)
    if mlflow_sync.holds_own_store(warehouse, config.mlflow_schema):
        raise UserError(
            f"ML_EVAL_MLFLOW_URI is {source.display}, but schema {config.mlflow_schema} of database"
            f" {warehouse.database} holds an MLflow store MLflow writes itself, which sync-mlflow does not"
            " overwrite: unset ML_EVAL_MLFLOW_URI, or use another database or schema (ML_EVAL_MLFLOW_SCHEMA)"
        )
    return mlflow_sync.tracking_uri(source)


def _train(warehouse: wh.Warehouse, config: Config, command: str = "`ml-eval train`") -> None:
    uri = _mlflow_target(warehouse, config, command)
    from ml_eval.producer.train import Settings, train  # imports scikit-learn and MLflow: only when training

    train(warehouse, Settings.from_config(config, mlflow_uri=uri), report=lambda line: print(line, flush=True))
    if uri is not None:  # the marts read the warehouse's copy: bring the new runs into it
        _sync_configured(warehouse, config)


def _sync_configured(warehouse: wh.Warehouse, config: Config) -> None:
    """Sync ML_EVAL_MLFLOW_URI's store into the warehouse's copy (the caller holds the lock)."""
    from ml_eval import mlflow_sync

    mlflow_sync.sync_configured(config, warehouse, report=lambda line: print(line, flush=True))


def _has_runs(warehouse: wh.Warehouse, config: Config) -> bool:
    from psycopg import sql

    with warehouse.connect(autocommit=True) as conn:
        query = sql.SQL("select exists (select from {})").format(sql.Identifier(config.mlflow_schema, "runs"))
        return bool(conn.execute(query).fetchone()[0])


def _refresh_wine(warehouse: wh.Warehouse, config: Config) -> None:
    """A corrected Wine seed file reaches the marts with the next build (datasets.refresh_wine)."""
    from ml_eval import datasets

    with warehouse.connect() as conn:
        refreshed = datasets.refresh_wine(conn, config.dataset_schema, config.project_dir)
    if refreshed is not None and refreshed.status != "unchanged":
        print(f"dataset {refreshed.name!r}: {refreshed.status} from the seed files ({refreshed.n_samples} samples)")


# --- the commands ---------------------------------------------------------------------------


@command(
    "env",
    "print the PG* variables of the warehouse, MLflow's tracking URI and the project (starts the embedded one)",
)
def cmd_env(args: argparse.Namespace, config: Config) -> None:
    """For `eval "$(ml-eval env)"`: then dbt, MLflow (MLFLOW_TRACKING_URI) and a training script's
    `ml_eval.log_predictions` all reach the same warehouse and project."""
    warehouse = _warehouse(args, config)
    if config.mlflow_uri:  # MLflow's own store (its password, if any, is not printed: MLflow needs it in the URI)
        from ml_eval import mlflow_sync

        tracking = mlflow_sync.source_from_config(config, must_exist=False).identity
    else:
        tracking = warehouse.sqlalchemy_url(config.mlflow_schema)
    values = {
        **warehouse.env(),
        "MLFLOW_TRACKING_URI": tracking,
        "ML_EVAL_PROJECT_DIR": str(config.project_dir),
    }
    for key, value in values.items():
        print(f"export {key}={shlex.quote(value)}")


@command(
    "exec",
    "run a command with the PG* variables set, in the project directory (e.g. `ml-eval exec -- dbt build`)",
    arg("command", nargs=argparse.REMAINDER, help="the command and its arguments, after --"),
)
def cmd_exec(args: argparse.Namespace, config: Config) -> int:
    words = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not words:
        raise UserError("exec needs a command, e.g. `ml-eval exec -- dbt build`")
    _warehouse(args, config)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    try:
        return subprocess.call([_executable(words[0]), *words[1:]], cwd=config.project_dir)
    except OSError as exc:
        raise UserError(f"cannot run {words[0]}: {exc.strerror}") from None


@command(
    "seeds",
    "write the Wine seed CSVs from scikit-learn's copy",
    arg("--directory", help="where to write them (default: seeds/dataset of the project)"),
)
def cmd_seeds(args: argparse.Namespace, config: Config) -> None:
    from ml_eval.producer.wine import write_seeds

    for path in write_seeds(Path(args.directory) if args.directory else config.package_dir / "seeds" / "dataset"):
        print(f"wrote {path}")


@command("lint", "sqlfluff lint the SQL with the dbt templater (models, tests, analyses, macros)")
def cmd_lint(args: argparse.Namespace, config: Config) -> int:
    _warehouse(args, config)  # sqlfluff's dbt templater needs a reachable database
    try:
        import sqlfluff  # noqa: F401  (a development tool: installed by `make install`)
    except ImportError:
        raise UserError("sqlfluff is not installed: it is a development tool (`make install`)") from None
    return subprocess.call(
        [sys.executable, "-m", "sqlfluff", "lint", "models", "tests", "analyses", "macros"], cwd=config.project_dir
    )


@command(
    "build",
    "dbt build (and the docs) over what the warehouse holds",
    WARN_ERROR,
    NO_DOCS,
    arg(
        "--full-refresh",
        action="store_true",
        help="rebuild the run-keyed marts from scratch and publish every mart whole (dbt's --full-refresh)",
    ),
)
def cmd_build(args: argparse.Namespace, config: Config) -> None:
    """Reads MLflow's store and the prediction tables, never creates them (`ml-eval train` and
    `demo` do): a mistyped schema or database is refused, and nothing is created."""
    warehouse = _warehouse(args, config, create=False)
    with preflight.exclusive(warehouse, "build"):
        if config.mlflow_uri:  # MLflow lives elsewhere: the marts are built on a fresh copy of it
            _sync_configured(warehouse, config)
        preflight.require_sources(warehouse, config, warn_error=args.warn_error)
        _announce(warehouse, config)
        _refresh_wine(warehouse, config)
        flags = [*(["--warn-error"] if args.warn_error else []), *(["--full-refresh"] if args.full_refresh else [])]
        run_dbt(["build", *flags], warehouse, config)
        # the runs' freshness (vars run_freshness_*_after_hours): a warning, or an error; a store
        # with no run yet has no age (dbt's freshness query would fail on it)
        if _has_runs(warehouse, config):
            run_dbt(
                ["source", "freshness", "--select", "source:mlflow.runs", *flags[: int(args.warn_error)]],
                warehouse,
                config,
            )
        else:
            print("source freshness: MLflow holds no run yet, nothing to age")
        if args.docs:
            _docs(warehouse, config)


def _check_promotion_rule(config: Config) -> None:
    """The promotion rule's vars, refused before any database is created (train reads them last)."""
    from ml_eval.producer import promotion

    promotion.Rule.from_config(config)


@command("train", "train the models, track them in MLflow, store their predictions", EXPERIMENT, REGISTERED_MODEL)
def cmd_train(args: argparse.Namespace, config: Config) -> None:
    _check_promotion_rule(config)
    warehouse = _warehouse(args, config)
    with preflight.exclusive(warehouse, "train"):
        _announce(warehouse, config)
        _train(warehouse, config)


@command(
    "load-dataset",
    "register a classification dataset (CSV or Parquet) in the Dataset Database",
    arg("name", help="the dataset's name (datasets.name)"),
    arg("file", help="a .csv or .parquet file: a key column, a target column, feature columns"),
    arg("--key", default="sample_key", help="the column of the samples' keys (default: sample_key)"),
    arg("--target", default="target", help="the column of the labels (default: target)"),
    arg("--features", help="comma-separated feature columns (default: every other column)"),
    arg("--replace", action="store_true", help="replace the dataset if it is registered with other content"),
)
def cmd_load_dataset(args: argparse.Namespace, config: Config) -> None:
    from ml_eval import datasets

    features = [c for c in args.features.split(",") if c] if args.features is not None else None
    table = datasets.read_table(args.file, text_columns=(args.key, args.target))
    warehouse = _warehouse(args, config)
    with preflight.exclusive(warehouse, "load-dataset"), warehouse.connect() as conn:
        datasets.ensure_tables(conn, config.dataset_schema)
        result = datasets.load_dataset(
            conn,
            config.dataset_schema,
            args.name,
            table,
            key_column=args.key,
            target_column=args.target,
            feature_columns=features,
            replace=args.replace,
        )
    labels = ", ".join(f"{label}={number}" for label, number in sorted(result.classes.items(), key=lambda i: i[1]))
    print(
        f"dataset {result.name!r} (id {result.dataset_id}): {result.status}, {result.n_samples} samples,"
        f" {len(result.classes)} classes ({labels})"
    )


@command(
    "load-predictions",
    "store an MLflow run's predictions (CSV or Parquet) on a registered dataset",
    arg("file", help="a .csv or .parquet file: sample_key, predicted, optionally proba_<label> per class"),
    arg("--run-id", required=True, help="the MLflow run that made the predictions"),
    arg("--dataset", required=True, help="the registered dataset they are predictions of"),
    arg("--replace", action="store_true", help="swap the run's predictions for these, atomically"),
)
def cmd_load_predictions(args: argparse.Namespace, config: Config) -> None:
    from ml_eval import loader

    keys, predicted, matrix, labels = loader.read_predictions_file(args.file)
    warehouse = _warehouse(args, config)
    with preflight.exclusive(warehouse, "load-predictions"):
        loader.sync_for_run(warehouse, config, args.run_id)
    with preflight.exclusive(warehouse, "load-predictions"), warehouse.connect() as conn:
        loaded = loader.load_predictions(
            conn,
            dataset_schema=config.dataset_schema,
            mlflow_schema=config.mlflow_schema,
            run_uuid=args.run_id,
            dataset=args.dataset,
            sample_keys=keys,
            predicted=predicted,
            probabilities=matrix,
            labels=labels,
            replace=args.replace,
            tolerance=float(config.var("probability_tolerance")),
            where=args.file,
        )
    swapped = f", replacing {loaded.n_replaced}" if loaded.n_replaced else ""
    scored = " with probabilities" if loaded.scored else ""
    print(f"run {loaded.run_uuid}: {loaded.n_predictions} predictions{scored} on {loaded.dataset!r}{swapped}")


@command(
    "sync-mlflow",
    "copy MLflow's tables from its own store (MySQL/MariaDB, SQLite, PostgreSQL) into the warehouse, incrementally",
    arg(
        "--from",
        dest="source",
        help="MLflow's backend store URI, e.g. mysql+pymysql://mlflow@db:3306/mlflow (default: $ML_EVAL_MLFLOW_URI)",
    ),
    arg(
        "--password-file",
        help="a file whose first line is the store's password (default:"
        " $ML_EVAL_MLFLOW_PASSWORD, else $ML_EVAL_MLFLOW_PASSWORD_FILE)",
    ),
)
def cmd_sync_mlflow(args: argparse.Namespace, config: Config) -> None:
    """One transaction on the warehouse: a failed or killed sync leaves the previous copy as it was.
    Progress goes to stderr, the summary line to stdout; the password is never printed."""
    from ml_eval import mlflow_sync

    uri = args.source or config.mlflow_uri
    if not uri:
        raise UserError(
            "sync-mlflow needs --from URI (or ML_EVAL_MLFLOW_URI): MLflow's backend store, e.g."
            " mysql+pymysql://mlflow@db:3306/mlflow or sqlite:///mlflow.db"
        )
    source = mlflow_sync.resolve_source(
        uri, password=config.mlflow_password, password_file=args.password_file or config.mlflow_password_file
    )
    tested = preflight.tested_revisions(config)
    mlflow_sync.check_source(source, tested)  # before the warehouse database may be created
    warehouse = _warehouse(args, config)
    with preflight.exclusive(warehouse, "sync-mlflow"):
        result = mlflow_sync.sync(source, warehouse, config.mlflow_schema, tested)
    print(result.summary, flush=True)


@command(
    "mlflow-ui",
    "MLflow's own UI over the warehouse's MLflow schema (sync-mlflow's copy), read-only, on 127.0.0.1",
    arg("--port", type=int, default=5000, help="the port to listen on (default: 5000)"),
)
def cmd_mlflow_ui(args: argparse.Namespace, config: Config) -> None:
    """`mlflow ui` (MLflow 3.17's server) over the warehouse's MLflow schema, every session
    read-only: the copy is sync-mlflow's, so MLflow must not write to it (a click that would
    write, e.g. renaming a run, fails with PostgreSQL's read-only error). The URI, with any
    password, goes to MLflow through MLFLOW_BACKEND_STORE_URI, not the command line."""
    warehouse = _warehouse(args, config, create=False)
    schema = config.mlflow_schema
    with warehouse.connect(autocommit=True) as conn:
        revisions = preflight.mlflow_revisions(conn, schema)
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    head = ScriptDirectory.from_config(_get_alembic_config("sqlite://")).get_current_head()  # installed MLflow's
    if not revisions:
        raise UserError(
            f"no MLflow store in schema {schema} of database {warehouse.database}: run `ml-eval sync-mlflow`"
            " (or `ml-eval train`) first"
        )
    if head not in revisions:
        raise UserError(
            f"{schema}.alembic_version of database {warehouse.database} is at {', '.join(revisions)}: the installed"
            f" MLflow's UI serves only its own revision {head} (a copy of an MLflow 2.22 store: use MLflow 2.22's"
            " `mlflow ui`)"
        )
    artifacts = config.artifacts_dir / warehouse.database
    artifacts.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": warehouse.sqlalchemy_url(schema, read_only=True),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    command = [_executable("mlflow"), "ui", "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1",
               "--default-artifact-root", artifacts.resolve().as_uri()]  # fmt: skip
    print(f"MLflow's UI over schema {schema} of {_describe(warehouse)} (read-only): http://127.0.0.1:{args.port}")
    sys.stdout.flush()
    os.chdir(config.project_dir)
    os.execve(command[0], command, env)  # MLflow's server in this process: signals reach it directly


@command(
    "demo",
    "the main job: load the seeds, train, build, test, document (README command 1)",
    FRESH,
    WARN_ERROR,
    NO_DOCS,
    EXPERIMENT,
    REGISTERED_MODEL,
)
def cmd_demo(args: argparse.Namespace, config: Config) -> None:
    """Command 1 of the README: everything from nothing on the configured warehouse.

    The seeds are loaded with their tests (`dbt build --select resource_type:seed`, not a bare
    `dbt seed`), so a bad seed is quarantined before any model trains on it; then the models
    train, then `dbt build` builds and tests everything over the seeds, predictions and MLflow.
    """
    _check_promotion_rule(config)
    warehouse = _warehouse(args, config)
    with preflight.exclusive(warehouse, "demo"):
        _mlflow_target(warehouse, config, "`ml-eval demo`")  # before the seeds: train would refuse
        _announce(warehouse, config)
        warn = ["--warn-error"] if args.warn_error else []
        run_dbt(
            ["build", "--select", "resource_type:seed", "--indirect-selection", "cautious", *warn], warehouse, config
        )
        _train(warehouse, config, "`ml-eval demo`")
        run_dbt(["build", *warn], warehouse, config)
        if args.docs:
            _docs(warehouse, config)
            print(f"report: {_report(warehouse, config)}")


@command("stop", "stop the embedded PostgreSQL and wait until it has stopped")
def cmd_stop(args: argparse.Namespace, config: Config) -> None:
    pid = wh.stop_embedded(config.embedded_dir)
    if pid is None:
        print("the embedded PostgreSQL is not running")
    else:
        print(f"stopped the embedded PostgreSQL (pid {pid})")


@command(
    "rules",
    "check the project's structure, keys and documentation (dbt-project-evaluator's rules)",
    arg("--manifest", type=Path, help="dbt's manifest.json (default: target/manifest.json of the project)"),
    arg("--catalog", type=Path, help="dbt's catalog.json (default: catalog.json beside the manifest, if there)"),
    arg("--no-parse", dest="parse", action="store_false", help="use the existing manifest, without `dbt parse`"),
)
def cmd_rules(args: argparse.Namespace, config: Config) -> int:
    from ml_eval import rules

    if args.parse:
        run_dbt(["parse"], _warehouse(args, config), config)
    return rules.run(args.manifest or config.target_dir / "manifest.json", args.catalog)


@command(
    "report",
    "write the evaluation report: one self-contained HTML page of the published marts",
    arg("--out", type=Path, help="the HTML file to write (default: target/report/index.html of the project)"),
)
def cmd_report(args: argparse.Namespace, config: Config) -> None:
    print(f"report: {_report(wh.resolve(config), config, args.out)}")


@command(
    "export-graph",
    "export the ML lineage graph as CSV files and Cypher scripts for Neo4j and Kùzu",
    arg("--out", type=Path, help="folder to write into (default: target/lineage_graph of the project)"),
)
def cmd_export_graph(args: argparse.Namespace, config: Config) -> None:
    from ml_eval.consumers import graph

    out = args.out or config.target_dir / graph.OUT_DIR
    for path in graph.export_graph(wh.resolve(config), config.published_schema, out):
        print(path)


@command(
    "metrics",
    "serve the published marts' gauges to Prometheus (/metrics), read at every scrape",
    arg("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"),
    arg("--port", type=int, default=9464, help="port to listen on, 0 for any free one (default: 9464)"),
    arg("--once", action="store_true", help="print the metrics page once and exit"),
)
def cmd_metrics(args: argparse.Namespace, config: Config) -> None:
    from ml_eval.consumers import metrics

    warehouse = wh.resolve(config)
    preflight.require_database(warehouse)
    if args.once:
        print(metrics.exposition(warehouse, config.published_schema), end="")
        return
    try:
        metrics.serve(warehouse, config.published_schema, args.host, args.port, lambda line: print(line, flush=True))
    except OSError as exc:
        raise UserError(f"cannot serve metrics on {args.host}:{args.port}: {exc.strerror or exc}") from None


@command(
    "roles",
    "create the least-privilege roles (MLflow reader, dbt transformer, reporter) and their grants",
    arg("--producer", help="the role MLflow and `ml-eval train` write as (default: $PGUSER, the administrator)"),
)
def cmd_roles(args: argparse.Namespace, config: Config) -> None:
    from ml_eval import roles

    for line in roles.create_roles(_warehouse(args, config), config, producer=args.producer):
        print(line)


@command(
    "bench",
    "benchmark the evaluation marts at growing sizes against the floor and pandas",
    arg("--sizes", help="comma-separated RUNSxSAMPLES (default: 50x178,1000x1000,10000x1000)"),
    arg("--seed", type=int, default=0, help="seed of the generated data (default: 0)"),
    arg("--pandas-max", type=int, help="run the pandas route up to this many predictions (default: 1,000,000)"),
    arg("--keep", action="store_true", help="keep the bench databases"),
    arg("--threads", type=int, help="threads registering MLflow runs (default: 4)"),
    arg(
        "--pg-options",
        default=os.environ.get("ML_EVAL_BENCH_PGOPTIONS", ""),
        help="libpq options for every session, e.g. '-c work_mem=256MB -c jit=off' (default: none)",
    ),
    arg("--pandas-route", action="store_true", help=argparse.SUPPRESS),  # the bench's own child process
)
def cmd_bench(args: argparse.Namespace, config: Config) -> None:
    from ml_eval.bench import benchmark

    if args.pandas_route:
        print(benchmark.pandas_route_line(wh.resolve(config), config))
        return
    options = {
        "sizes": args.sizes,
        "pandas_max": args.pandas_max,
        "threads": args.threads,
    }
    print(
        benchmark.run_bench(
            wh.resolve(config),
            config,
            seed=args.seed,
            keep=args.keep,
            pg_options=args.pg_options,
            **{key: value for key, value in options.items() if value is not None},
        )
    )


# --- the parser and main ----------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--project-dir", help="the dbt project (default: $ML_EVAL_PROJECT_DIR, else the current directory)"
    )
    common.add_argument("--database", help="database name (default: $PGDATABASE or ml_eval)")
    common.add_argument("-v", "--verbose", action="store_true", help="log progress")
    top = argparse.ArgumentParser(prog="ml-eval", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="name", required=True, metavar="COMMAND")
    for registered in COMMANDS.values():
        parsed = sub.add_parser(registered.name, help=registered.help, description=registered.help, parents=[common])
        for argument in registered.arguments:
            parsed.add_argument(*argument.flags, **argument.options)
        parsed.set_defaults(handler=registered.handler)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        config = Config.resolve(
            project_dir=args.project_dir,
            database=args.database,
            experiment=getattr(args, "experiment", None),
            registered_model=getattr(args, "registered_model", None),
        )
        return args.handler(args, config) or 0
    except UserError as exc:
        print(f"ml-eval: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
