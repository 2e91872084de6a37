"""`ml-eval bench`: the evaluation marts at 10,000 to 10 million predictions, timed.

For every size R x S (R runs of S predictions, `ml_eval.bench.scale`), in a fresh database of the
warehouse (`ml_eval_bench_<R>x<S>`, the prefix $ML_EVAL_BENCH_DATABASE_PREFIX if set, dropped
afterwards unless --keep):

1. load the seeds (`dbt seed`), generate the runs (MLflow client + COPY), vacuum analyze;
2. full build: `dbt run --full-refresh --select +path:models/marts/evaluation` as a child
   process: wall time, SQL time (the sum of the models' `execution_time` in
   run_results.json), peak RSS of the dbt process; then each curve mart (a view over the
   arrays of int_run_class_scores_summarized) written out as a table, as the publish copies
   it: its rows, seconds and size, and the size of the table of arrays;
3. incremental builds: the same `dbt run` without --full-refresh, first with nothing new
   (what every build costs: dbt's work per model, and the models rebuilt whole, which read
   a row or a few per run), then after one more run was generated; between the two,
   `sync-mlflow` of the database's MLflow store (MLflow's own tables, a PostgreSQL source)
   into `<database>_sync`: the first sync (MLflow's DDL included), then the one after the new run;
4. the floor: one `group by run, actual class, predicted class` count over the predictions
   joined to their targets, the least any confusion matrix costs (best of three, client
   timing, rows fetched); the floor of log loss: each prediction's true-class probability
   looked up and summed per run, the least any probability metric costs (once); and the
   floor of exact ROC AUC: one rank of every class probability within its run and class,
   the least any Mann-Whitney AUC costs (once);
5. the route a user would otherwise take (up to --pandas-max predictions): read the rows
   into pandas and compute each run's metrics with scikit-learn (`pandas_route`), in a child
   process, with its peak RSS.

Then it prints one table, sizes side by side, with the ratios the goals are about:
marts SQL / floor (<= 2 at 10M), incremental / full (<= 5%), pandas / marts SQL (>= 10 at
1M), dbt peak RSS (< 500 MB). Goals are shown, not asserted: timings depend on the machine.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ml_eval import warehouse as wh
from ml_eval.bench import scale
from ml_eval.config import Config
from ml_eval.dbt import dbt_arguments
from ml_eval.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_SIZES = "50x178,1000x1000,10000x1000"
SELECTION = "+path:models/marts/evaluation"
PANDAS_MAX = 1_000_000
METRICS = (
    "n_predictions", "accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro",
    "precision_weighted", "recall_weighted", "f1_weighted", "cohen_kappa", "mcc", "log_loss", "roc_auc",
)  # fmt: skip
SERVER_SETTINGS = (
    "shared_buffers", "work_mem", "maintenance_work_mem", "effective_cache_size",
    "max_parallel_workers_per_gather", "jit", "wal_level", "synchronous_commit", "max_wal_size",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# the pandas + scikit-learn route


def sklearn_metrics(y_true, y_pred, proba, classes) -> dict[str, float | None]:
    """One run's metrics as scikit-learn computes them (None where it returns NaN or refuses)."""
    from sklearn import metrics as skm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values: dict[str, float | None] = {
            "n_predictions": len(y_true),
            "accuracy": skm.accuracy_score(y_true, y_pred),
            "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
            "cohen_kappa": skm.cohen_kappa_score(y_true, y_pred),
            "mcc": skm.matthews_corrcoef(y_true, y_pred),
            "log_loss": skm.log_loss(y_true, proba, labels=classes),
        }
        for average in ("macro", "weighted"):
            p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
            values |= {f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f}
        try:
            if len(classes) == 2:
                values["roc_auc"] = skm.roc_auc_score(y_true, proba[:, 1])
            else:
                values["roc_auc"] = skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=classes)
        except ValueError:  # undefined for this run
            values["roc_auc"] = None
    return {
        key: None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
        for key, value in values.items()
    }


@dataclass
class PandasRoute:
    """What the pandas route computed and how long reading and computing took."""

    metrics: dict[str, dict[str, float | None]]  # run_uuid -> metric -> value
    read_seconds: float
    compute_seconds: float
    n_predictions: int

    @property
    def seconds(self) -> float:
        return self.read_seconds + self.compute_seconds


def pandas_route(warehouse: wh.Warehouse, config: Config) -> PandasRoute:
    """Read every evaluated run's predictions into pandas, compute its metrics with scikit-learn.

    A run is evaluated as in the marts: FINISHED, not deleted, in an experiment not deleted.
    A class without a stored probability counts 0, as the marts and tests_python do.
    """
    import numpy as np
    import pandas as pd
    import sqlalchemy

    dataset_schema, mlflow_schema = config.dataset_schema, config.mlflow_schema
    engine = sqlalchemy.create_engine(warehouse.sqlalchemy_url("pg_catalog"))  # qualified names only
    started = time.perf_counter()
    evaluated = f"""
        select p.prediction_id, p.run_uuid
        from {dataset_schema}.predictions as p
        join {mlflow_schema}.runs as r on r.run_uuid = p.run_uuid
        join {mlflow_schema}.experiments as e on e.experiment_id = r.experiment_id
        where r.status = 'FINISHED' and r.lifecycle_stage = 'active' and e.lifecycle_stage = 'active'
    """
    with engine.connect() as conn:
        rows = pd.read_sql_query(
            sqlalchemy.text(
                f"""select p.prediction_id, p.run_uuid, t.class as actual, p.class as predicted
                from ({evaluated}) as e join {dataset_schema}.predictions as p using (prediction_id)
                join {dataset_schema}.targets as t on t.sample_index = p.sample_index"""
            ),
            conn,
        )
        scores = pd.read_sql_query(
            sqlalchemy.text(
                f"""select s.prediction_id, s.class, s.probability
                from ({evaluated}) as e join {dataset_schema}.prediction_scores as s using (prediction_id)"""
            ),
            conn,
        )
    engine.dispose()
    read_seconds = time.perf_counter() - started

    started = time.perf_counter()
    wide = scores.pivot(index="prediction_id", columns="class", values="probability")
    rows = rows.join(wide, on="prediction_id").sort_values("prediction_id", kind="stable")
    class_columns = list(wide.columns)
    results: dict[str, dict[str, float | None]] = {}
    for run_uuid, run in rows.groupby("run_uuid", sort=False):
        proba = run[class_columns].to_numpy()
        scored = ~np.isnan(proba).all(axis=0)  # the classes this run stored a probability for
        classes = [int(c) for c, keep in zip(class_columns, scored, strict=True) if keep]
        proba = np.nan_to_num(proba[:, scored], nan=0.0)
        results[str(run_uuid)] = sklearn_metrics(run["actual"].to_numpy(), run["predicted"].to_numpy(), proba, classes)
    return PandasRoute(results, read_seconds, time.perf_counter() - started, len(rows))


# ---------------------------------------------------------------------------------------------
# one size


EVALUATION_PATHS = ("models/marts/evaluation/", "models/intermediate/evaluation/")


@dataclass
class Build:
    wall: float
    sql: float
    peak_mb: float
    models: int
    model_seconds: dict[str, float] = field(default_factory=dict)  # model name -> execution_time
    evaluation_sql: float = 0.0  # the models under models/*/evaluation/ only


@dataclass
class SyncTiming:
    """One `ml-eval sync-mlflow` of the bench database's MLflow store into another database."""

    seconds: float
    rows_read: int
    rows_written: int


def sync_timed(source_warehouse: wh.Warehouse, config: Config, target: wh.Warehouse) -> SyncTiming:
    """`sync-mlflow` from the bench database's MLflow schema (a PostgreSQL source, MLflow 3.17's
    tables) into `target`'s, in this process, timed as its summary line reports it."""
    from ml_eval import mlflow_sync
    from ml_eval.preflight import tested_revisions

    source = mlflow_sync.resolve_source(source_warehouse.sqlalchemy_url(config.mlflow_schema))
    done = mlflow_sync.sync(source, target, config.mlflow_schema, tested_revisions(config))
    written = sum(change.changed for change in done.changes)
    return SyncTiming(done.seconds, sum(change.read for change in done.changes), written)


@dataclass
class SizeResult:
    runs: int
    samples: int
    generate_seconds: float = 0.0
    mlflow_seconds: float = 0.0
    copy_seconds: float = 0.0
    analyze_seconds: float = 0.0
    full: Build | None = None
    nothing_new: Build | None = None
    incremental: Build | None = None
    floor: float = 0.0
    auc_floor: float | None = None
    log_loss_floor: float | None = None
    pandas: dict | None = None
    sync_full: SyncTiming | None = None
    sync_one_run: SyncTiming | None = None
    curves: dict[str, tuple[int, float, int]] = field(default_factory=dict)  # mart -> rows, seconds, bytes
    summary_bytes: int | None = None

    @property
    def predictions(self) -> int:
        return self.runs * self.samples


def _dbt_command() -> list[str]:
    script = Path(sys.executable).parent / "dbt"
    if script.exists():
        return [str(script)]
    found = shutil.which("dbt")
    return [found] if found else [sys.executable, "-c", "from dbt.cli.main import cli; cli()"]


# A small process between the bench and the measured one: a child's peak RSS (ru_maxrss)
# starts at its parent's RSS when it forks, so the bench (pandas, MLflow loaded) must not
# be the measured process's parent. This launcher is a bare interpreter of ~10 MB.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stdout.flush()
print("ml-eval-bench-peak-kb", usage.ru_maxrss, flush=True)
sys.exit(os.waitstatus_to_exitcode(status))
"""
_PEAK = "ml-eval-bench-peak-kb"


def _child(command: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, float, float]:
    """Run a child process; return its exit code, output, wall seconds and peak RSS in MB."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCHER, *command],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    lines = done.stdout.splitlines()
    peaks = [line for line in lines if line.startswith(_PEAK)]
    peak_mb = int(peaks[-1].split()[1]) / 1024 if peaks else float("nan")
    return done.returncode, "\n".join(line for line in lines if not line.startswith(_PEAK)), wall, peak_mb


def run_dbt_timed(
    args: list[str], warehouse: wh.Warehouse, config: Config, target: Path, pg_options: str = ""
) -> Build:
    """`dbt <args>` in a child process; its wall time, models' SQL time and peak RSS."""
    env = {**os.environ, **warehouse.env(), "DO_NOT_TRACK": "1"}
    if pg_options:
        env["PGOPTIONS"] = pg_options
    command = [
        *_dbt_command(), *dbt_arguments(args, config),
        "--target-path", str(target / "target"), "--log-path", str(target / "logs"),
    ]  # fmt: skip
    code, output, wall, peak = _child(command, env, config.project_dir)
    if code != 0:
        errors = [line for line in output.splitlines() if "ERROR" in line or "Error" in line]
        raise UserError(f"dbt {' '.join(args)} failed: {(errors or output.splitlines()[-1:] or ['?'])[0].strip()}")
    results = json.loads((target / "target" / "run_results.json").read_text())["results"]
    models = [r for r in results if r["unique_id"].startswith("model.")]
    manifest = json.loads((target / "target" / "manifest.json").read_text())["nodes"]
    evaluation = [r for r in models if manifest[r["unique_id"]]["original_file_path"].startswith(EVALUATION_PATHS)]
    return Build(
        wall,
        sum(r["execution_time"] for r in models),
        peak,
        len(models),
        {r["unique_id"].split(".")[-1]: r["execution_time"] for r in models},
        sum(r["execution_time"] for r in evaluation),
    )


FLOOR_SQL = """
select p.run_uuid, t.class as actual_class, p.class as predicted_class, count(*) as n
from {schema}.predictions as p
inner join {schema}.targets as t on t.sample_index = p.sample_index
group by p.run_uuid, t.class, p.class
"""


# Exact ROC AUC ranks every class probability among its run's probabilities of that class;
# no count can stand in for it. The least SQL that does it: one window, nothing else.
# (The ranks are summed: under a bare count(*) PostgreSQL drops the unused window, sort
# and all, and times a join instead.)
AUC_FLOOR_SQL = """
select sum(probability_rank) from (
    select rank() over (partition by p.run_uuid, s.class order by s.probability) as probability_rank
    from {schema}.predictions as p
    inner join {schema}.prediction_scores as s on s.prediction_id = p.prediction_id
) as ranked
"""


# Log loss needs one probability per prediction, its true class's: no ranking, but a read of
# the scores table, which holds a row per class. The least SQL for it: one lookup per prediction.
LOG_LOSS_FLOOR_SQL = """
select p.run_uuid, sum(ln(greatest(s.probability, 1e-15))) as log_probability_sum
from {schema}.predictions as p
inner join {schema}.targets as t on t.sample_index = p.sample_index
inner join {schema}.prediction_scores as s on s.prediction_id = p.prediction_id and s.class = t.class
group by p.run_uuid
"""


def floor_seconds(
    warehouse: wh.Warehouse, config: Config, pg_options: str = "", repeat: int = 3, query: str = FLOOR_SQL
) -> float:
    """Best client time of a floor query (all result rows fetched)."""
    best = math.inf
    kwargs = {"options": pg_options} if pg_options else {}
    with warehouse.connect(**kwargs) as conn:
        for _ in range(repeat):
            started = time.perf_counter()
            conn.execute(query.format(schema=config.dataset_schema)).fetchall()
            best = min(best, time.perf_counter() - started)
    return best


CURVE_MARTS = ("fct_roc_curve", "fct_precision_recall_curve", "fct_calibration_bins")
SUMMARY_TABLE = "int_run_class_scores_summarized"


def curve_costs(warehouse: wh.Warehouse) -> tuple[dict[str, tuple[int, float, int]], int | None]:
    """What the curve marts cost a publish: each view written out as a table (rows, seconds,
    bytes), as publish_marts copies it; and the size of the table whose arrays they unnest."""
    costs: dict[str, tuple[int, float, int]] = {}
    with warehouse.connect(autocommit=True) as conn:
        for mart in CURVE_MARTS:
            schema = conn.execute(
                "select table_schema from information_schema.views where table_name = %s", (mart,)
            ).fetchone()
            if schema is None:
                continue
            started = time.perf_counter()
            conn.execute(f'create temporary table bench_curve as select * from "{schema[0]}"."{mart}"')
            seconds = time.perf_counter() - started
            rows, size = conn.execute(
                "select count(*), pg_total_relation_size('bench_curve') from bench_curve"
            ).fetchone()
            conn.execute("drop table bench_curve")
            costs[mart] = (rows, seconds, size)
        summary = conn.execute(
            "select pg_total_relation_size(c.oid) from pg_class as c where c.relname = %s and c.relkind = 'r'",
            (SUMMARY_TABLE,),
        ).fetchone()
    return costs, summary[0] if summary else None


def bench_size(
    base: wh.Warehouse, config: Config, runs: int, samples: int, *, work: Path, seed: int, pandas_max: int, keep: bool,
    pg_options: str, threads: int, report,
) -> SizeResult:  # fmt: skip
    result = SizeResult(runs, samples)
    prefix = os.environ.get("ML_EVAL_BENCH_DATABASE_PREFIX") or "ml_eval_bench"  # a shared server: one per user
    warehouse = base.with_database(f"{prefix}_{runs}x{samples}")
    wh.ensure_database(warehouse, fresh=True)
    try:
        report(f"{runs}x{samples}: database {warehouse.database}: loading the seeds")
        run_dbt_timed(["seed", "--quiet"], warehouse, config, work, pg_options)
        generated = scale.generate(
            warehouse,
            config,
            runs,
            samples,
            seed=seed,
            threads=threads,
            report=lambda line: report(f"{runs}x{samples}: {line}"),
        )
        result.generate_seconds = generated.seconds
        result.mlflow_seconds = generated.mlflow_seconds
        result.copy_seconds = generated.copy_seconds
        started = time.perf_counter()
        scale.analyze(warehouse, config)
        result.analyze_seconds = time.perf_counter() - started
        report(
            f"{runs}x{samples}: generated {generated.n_runs} runs, {generated.n_predictions:,} predictions in"
            f" {generated.seconds:.0f} s (MLflow {generated.mlflow_seconds:.0f} s, COPY {generated.copy_seconds:.0f} s)"
        )
        report(f"{runs}x{samples}: full build")
        result.full = run_dbt_timed(
            ["run", "--full-refresh", "--select", SELECTION], warehouse, config, work, pg_options
        )
        report(f"{runs}x{samples}: full build {result.full.wall:.1f} s wall, {result.full.sql:.1f} s SQL")
        result.curves, result.summary_bytes = curve_costs(warehouse)
        result.nothing_new = run_dbt_timed(["run", "--select", SELECTION], warehouse, config, work, pg_options)
        copy = warehouse.with_database(f"{warehouse.database}_sync")
        wh.ensure_database(copy, fresh=True)
        try:
            report(f"{runs}x{samples}: sync-mlflow of the MLflow store into {copy.database} (full)")
            result.sync_full = sync_timed(warehouse, config, copy)
            scale.generate(warehouse, config, 1, samples, seed=seed, first_ordinal=runs, threads=1)
            result.sync_one_run = sync_timed(warehouse, config, copy)
            report(
                f"{runs}x{samples}: sync {result.sync_full.seconds:.1f} s full,"
                f" {result.sync_one_run.seconds:.1f} s after one new run"
            )
        finally:
            if not keep:
                _drop(copy, config)
        result.incremental = run_dbt_timed(["run", "--select", SELECTION], warehouse, config, work, pg_options)
        report(
            f"{runs}x{samples}: incremental build {result.incremental.wall:.1f} s wall,"
            f" {result.incremental.sql:.1f} s SQL"
        )
        result.floor = floor_seconds(warehouse, config, pg_options)
        result.log_loss_floor = floor_seconds(warehouse, config, pg_options, repeat=1, query=LOG_LOSS_FLOOR_SQL)
        result.auc_floor = floor_seconds(warehouse, config, pg_options, repeat=1, query=AUC_FLOOR_SQL)
        if runs * samples <= pandas_max:
            report(f"{runs}x{samples}: pandas + scikit-learn route")
            env = {**os.environ, **warehouse.env()}
            if pg_options:
                env["PGOPTIONS"] = pg_options
            code, output, wall, peak = _child(
                [sys.executable, "-m", "ml_eval", "bench", "--pandas-route"], env, config.project_dir
            )
            if code != 0:
                raise UserError(f"the pandas route failed: {output.strip().splitlines()[-1:]}")
            result.pandas = {**json.loads(output.strip().splitlines()[-1]), "wall": wall, "peak_mb": peak}
    finally:
        if not keep:
            _drop(warehouse, config)
    return result


def _drop(warehouse: wh.Warehouse, config: Config) -> None:
    with warehouse.connect("postgres", autocommit=True) as conn:
        conn.execute(f'drop database if exists "{warehouse.database}" with (force)')
    shutil.rmtree(config.artifacts_dir / warehouse.database, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the table


def _machine(base: wh.Warehouse) -> list[str]:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    with base.connect("postgres") as conn:
        version = conn.execute("show server_version").fetchone()[0]
        settings = conn.execute(
            "select name, setting, unit from pg_settings where name = any(%s) order by name", (list(SERVER_SETTINGS),)
        ).fetchall()

    def shown(setting: str, unit: str | None) -> str:
        if unit in ("8kB", "kB", "MB") and setting.isdigit():
            kb = int(setting) * {"8kB": 8, "kB": 1, "MB": 1024}[unit]
            return f"{kb // 1024} MB" if kb >= 1024 else f"{kb} kB"
        return setting + (f" {unit}" if unit else "")

    kind = "embedded (pgserver)" if base.embedded else f"server at {base.host}:{base.port}"
    return [
        f"machine: {os.cpu_count()} cores, {pages / 2**30:.1f} GiB RAM, {platform.system()} {platform.machine()},"
        f" Python {platform.python_version()}",
        f"PostgreSQL {version}, {kind}",
        "server config: " + ", ".join(f"{name}={shown(setting, unit)}" for name, setting, unit in settings),
    ]


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def _ratio(numerator: float | None, denominator: float | None, percent: bool = False) -> str:
    if numerator is None or not denominator:
        return "-"
    value = numerator / denominator
    return f"{100 * value:.1f} %" if percent else f"{value:.1f}x"


def table(results: list[SizeResult]) -> list[str]:
    """One table: a row per measure, a column per size."""
    rows: list[tuple[str, list[str]]] = []

    def row(name: str, values) -> None:
        rows.append((name, [str(v) for v in values]))

    def build(r: SizeResult, part: str, attribute: str) -> float | None:
        done = getattr(r, part)
        return getattr(done, attribute) if done else None

    row("runs x samples", [f"{r.runs:,} x {r.samples:,}" for r in results])
    row("predictions (scores)", [f"{r.predictions:,} ({3 * r.predictions:,})" for r in results])
    row("generate: MLflow runs", [_seconds(r.mlflow_seconds) for r in results])
    row("generate: COPY rows", [_seconds(r.copy_seconds) for r in results])
    row("full build: wall", [_seconds(build(r, "full", "wall")) for r in results])
    row("full build: SQL (models)", [_seconds(build(r, "full", "sql")) for r in results])
    for model in ("int_run_class_scores_summarized", "fct_confusion_matrix", "fct_run_comparisons"):
        row(f"  of which {model}", [_seconds(r.full.model_seconds.get(model)) if r.full else "-" for r in results])
    row("  of which evaluation models", [_seconds(build(r, "full", "evaluation_sql")) for r in results])
    row("incremental, nothing new: SQL", [_seconds(build(r, "nothing_new", "sql")) for r in results])
    row("  of which fct_run_comparisons", [
        _seconds(r.nothing_new.model_seconds.get("fct_run_comparisons")) if r.nothing_new else "-" for r in results
    ])  # fmt: skip
    row("+1 run incremental: wall", [_seconds(build(r, "incremental", "wall")) for r in results])
    row("+1 run incremental: SQL", [_seconds(build(r, "incremental", "sql")) for r in results])
    row("  of which evaluation models", [_seconds(build(r, "incremental", "evaluation_sql")) for r in results])
    row("  of which fct_run_comparisons", [
        _seconds(r.incremental.model_seconds.get("fct_run_comparisons")) if r.incremental else "-" for r in results
    ])  # fmt: skip
    row("sync of the runs (sync-mlflow): full", [
        f"{_seconds(r.sync_full.seconds)} ({r.sync_full.rows_read:,} rows)" if r.sync_full else "-" for r in results
    ])  # fmt: skip
    row("  after one new run (rows written)", [
        f"{_seconds(r.sync_one_run.seconds)} ({r.sync_one_run.rows_written:,})" if r.sync_one_run else "-"
        for r in results
    ])  # fmt: skip
    for mart in CURVE_MARTS:
        row(f"{mart}: rows, written as a table", [
            f"{r.curves[mart][0]:,} rows, {_seconds(r.curves[mart][1])}, {r.curves[mart][2] / 1e6:.1f} MB"
            if mart in r.curves else "-" for r in results
        ])  # fmt: skip
    row(f"{SUMMARY_TABLE}: size (curve arrays)", [
        f"{r.summary_bytes / 1e6:.1f} MB" if r.summary_bytes is not None else "-" for r in results
    ])  # fmt: skip
    row("floor: group-by count", [_seconds(r.floor) for r in results])
    row("log-loss floor: true-class probability", [_seconds(r.log_loss_floor) for r in results])
    row("ROC AUC floor: rank every probability", [_seconds(r.auc_floor) for r in results])
    row("pandas route: read", [_seconds(r.pandas["read_seconds"]) if r.pandas else "-" for r in results])
    row("pandas route: sklearn", [_seconds(r.pandas["compute_seconds"]) if r.pandas else "-" for r in results])
    row("marts SQL / floor    (goal <= 2 at 10M)", [_ratio(build(r, "full", "sql"), r.floor) for r in results])
    row("log-loss floor / floor", [_ratio(r.log_loss_floor, r.floor) for r in results])
    row("marts SQL / ROC AUC floor", [_ratio(build(r, "full", "sql"), r.auc_floor) for r in results])
    row("  fct_confusion_matrix / floor", [
        _ratio(r.full.model_seconds.get("fct_confusion_matrix"), r.floor) if r.full else "-" for r in results
    ])  # fmt: skip
    row("incremental / full SQL  (goal <= 5 %)", [
        _ratio(build(r, "incremental", "sql"), build(r, "full", "sql"), percent=True) for r in results
    ])  # fmt: skip
    row("  evaluation models only", [
        _ratio(build(r, "incremental", "evaluation_sql"), build(r, "full", "evaluation_sql"), percent=True)
        for r in results
    ])  # fmt: skip
    row("  one run's own cost (+1 run - nothing new)", [
        _ratio(
            build(r, "incremental", "sql") - build(r, "nothing_new", "sql"), build(r, "full", "sql"), percent=True
        ) if r.incremental and r.nothing_new else "-"
        for r in results
    ])  # fmt: skip
    row("incremental / full wall", [
        _ratio(build(r, "incremental", "wall"), build(r, "full", "wall"), percent=True) for r in results
    ])  # fmt: skip
    row("pandas / marts SQL   (goal >= 10 at 1M)", [
        _ratio(r.pandas["read_seconds"] + r.pandas["compute_seconds"], build(r, "full", "sql")) if r.pandas else "-"
        for r in results
    ])  # fmt: skip
    row("peak RSS dbt full / incr (goal < 500 MB)", [
        f"{build(r, 'full', 'peak_mb'):.0f} / {build(r, 'incremental', 'peak_mb'):.0f} MB" if r.full else "-"
        for r in results
    ])  # fmt: skip
    row("peak RSS pandas route", [f"{r.pandas['peak_mb']:.0f} MB" if r.pandas else "-" for r in results])
    width = max(len(name) for name, _ in rows)
    widths = [max(len(values[i]) for _, values in rows) for i in range(len(results))]
    lines = []
    for k, (name, values) in enumerate(rows):
        lines.append(f"{name:<{width}} | " + " | ".join(f"{v:>{w}}" for v, w in zip(values, widths, strict=True)))
        if k == 1:
            lines.append("-" * width + "-+-" + "-+-".join("-" * w for w in widths))
    return lines


# ---------------------------------------------------------------------------------------------
# entry points (the command line is ml_eval.cli's `bench`)


def pandas_route_line(warehouse: wh.Warehouse, config: Config) -> str:
    """The pandas route as the bench's child process reports it: one JSON line."""
    route = pandas_route(warehouse, config)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return json.dumps({
        "read_seconds": route.read_seconds, "compute_seconds": route.compute_seconds,
        "runs": len(route.metrics), "predictions": route.n_predictions, "self_peak_mb": peak,
    })  # fmt: skip


def run_bench(
    base: wh.Warehouse, config: Config, sizes: str = DEFAULT_SIZES, *, seed: int = 0, pandas_max: int = PANDAS_MAX,
    keep: bool = False, pg_options: str = "", threads: int = scale.THREADS,
) -> str:  # fmt: skip
    """Every size in turn (progress on stderr); the machine and the table, as text."""
    parsed = [scale.parse_size(text) for text in sizes.split(",") if text.strip()]

    def report(line: str) -> None:
        print(f"bench: {line}", file=sys.stderr, flush=True)

    results = []
    with tempfile.TemporaryDirectory(prefix="ml_eval_bench_") as work:
        for runs, samples in parsed:
            results.append(
                bench_size(
                    base, config, runs, samples, work=Path(work), seed=seed, pandas_max=pandas_max,
                    keep=keep, pg_options=pg_options, threads=threads, report=report,
                )
            )  # fmt: skip
    lines = _machine(base)
    lines.append(
        f"dbt: dbt run --select {SELECTION} ({results[0].full.models} models); SQL = sum of their execution_time"
    )
    if pg_options:
        lines.append(f"session options (PGOPTIONS): {pg_options}")
    return "\n".join([*lines, "", *table(results)])
