"""`ml-eval train`: fit the candidate models on the seeded data, track them in MLflow, store predictions.

1. Read the seeds' `samples` joined to `targets` (on sample_index) from the seed schema
   (`Config.seed_schema`, default `wine`) and validate them before anything is
   written: a missing or empty table, samples without a target, a single class, NULL
   values or an impossible split stop with one line (`UserError`), leaving no MLflow run
   and no prediction behind.
2. Split once, stratified and seeded (test_size 0.3, random_state 42: 124 train / 54 test).
3. Per candidate (`ml_eval.producer.candidates`), one MLflow run in `Config.experiment`:
   log the params -> fit -> predict on the test split -> COPY the predictions in an open
   transaction -> log the two datasets, the model, the metrics (each under the first key of
   its list in var `mlflow_metric_names`, MLflow's evaluator names, linked to the model and dataset) and their per-stage
   history, register the model as a version of `Config.registered_model` -> commit the predictions -> the run ends
   FINISHED. Any exception on the way rolls the predictions back and MLflow's `start_run`
   context marks the run FAILED; the command stops there (exit 2, no champion change).
4. This invocation's best run is the one with the best value of the promotion metric (var
   `promotion_rule`, default macro F1) on the test split; ties go to the lower log_loss, then to
   the lower version number (the earlier candidate). Scores are compared rounded to 12
   decimals, so runs whose scores differ only by floating-point noise count as tied.
5. That run is judged against the version holding the champion alias now
   (`ml_eval.producer.promotion`): it takes the alias (var `champion_alias`) only if it beats
   the holder on the same dataset and evaluation samples by the rule's margin and, by
   default, beyond chance on those samples (exact McNemar, `promotion_rule.max_p_value`),
   else it gets var `challenger_alias`. The decision and its reason are tags of its model version.

Re-running appends new runs, versions and predictions; earlier ones are never touched.
How models are saved (skops and its trusted types) is explained in `ml_eval.producer.tracking`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from ml_eval import datasets as datasets_db
from ml_eval.config import Config
from ml_eval.errors import UserError
from ml_eval.mlflow_names import logged_metric_keys, preferred_tag
from ml_eval.producer import predictions, promotion
from ml_eval.producer.candidates import Candidate, default_candidates, hyperparameters
from ml_eval.warehouse import Warehouse

log = logging.getLogger(__name__)

LABEL = "class"
KEY_COLUMNS = ("sample_id", "dataset_id", "sample_index")
NUMERIC_TYPES = ("double precision", "real", "integer", "smallint", "bigint", "numeric")
SHOWN = 5  # how many offending keys an error message lists


TEST_SIZE = 0.3
RANDOM_STATE = 42


@dataclass(frozen=True)
class Settings:
    """What one `train` invocation reads from the configuration, and how it splits."""

    dataset_schema: str
    mlflow_schema: str
    experiment: str
    registered_model: str
    metric_keys: dict[str, str]  # marts' metric -> the key it is logged under (logged_metric_keys)
    champion_alias: str
    model_family_tag: str
    git_commit_tag: str
    artifacts_dir: Path
    project_dir: Path
    rule: promotion.Rule
    metric_names: dict[str, object]  # var mlflow_metric_names: how a holder's logged value is read
    seed_schema: str = "wine"
    test_size: float = TEST_SIZE
    random_state: int = RANDOM_STATE
    # MLflow's own store when it is not the warehouse (ML_EVAL_MLFLOW_URI, password included):
    # the runs go there, and `ml-eval train` then syncs them into the warehouse's copy
    mlflow_uri: str | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, config: Config, **overrides) -> Settings:
        values = {
            "dataset_schema": config.dataset_schema,
            "seed_schema": config.seed_schema,
            "mlflow_schema": config.mlflow_schema,
            "experiment": config.experiment,
            "registered_model": config.registered_model,
            "metric_keys": logged_metric_keys(config),
            "champion_alias": config.var("champion_alias"),
            "model_family_tag": preferred_tag(config, "model_family_tags"),
            "git_commit_tag": preferred_tag(config, "git_commit_tags"),
            "artifacts_dir": config.artifacts_dir,
            "project_dir": config.project_dir,
            "rule": promotion.Rule.from_config(config),
            "metric_names": dict(config.var("mlflow_metric_names")),
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


@dataclass(frozen=True)
class Dataset:
    """The samples' features and their target class, both indexed by sample_index."""

    features: pd.DataFrame
    classes: pd.Series

    @property
    def labels(self) -> list[int]:
        return sorted(int(label) for label in self.classes.unique())


@dataclass(frozen=True)
class Split:
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


@dataclass(frozen=True)
class Evaluation:
    predicted: np.ndarray  # the class predicted for each test sample
    probabilities: np.ndarray  # one column per label of the dataset
    metrics: dict[str, float]
    history: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    name: str
    family: str
    run_id: str
    version: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class TrainResult:
    runs: list[RunResult]
    champion: RunResult  # this invocation's best run, the one judged against the holder
    decision: promotion.Decision | None = None


# --- 1. read and validate ---------------------------------------------------------------


def _table(schema: str, table: str) -> str:
    return f"{schema}.{table}"


def _columns(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str]] | None:
    """(name, type) of the table's columns in order, or None when the table does not exist."""
    regclass = conn.execute("select to_regclass(%s)::oid", (sql.Identifier(schema, table).as_string(conn),)).fetchone()[
        0
    ]
    if regclass is None:
        return None
    return conn.execute(
        "select attname, format_type(atttypid, atttypmod) from pg_attribute"
        " where attrelid = %s and attnum > 0 and not attisdropped order by attnum",
        (regclass,),
    ).fetchall()


def _listed(values: Sequence[object]) -> str:
    shown = ", ".join(str(value) for value in values[:SHOWN])
    return shown + (", ..." if len(values) > SHOWN else "")


def read_dataset(conn: psycopg.Connection, schema: str) -> Dataset:
    """Read samples joined to targets, or raise UserError naming what is wrong."""
    samples_columns = _columns(conn, schema, "samples")
    if samples_columns is None:
        raise UserError(
            f"no samples to train on: table {_table(schema, 'samples')} does not exist (load the seeds first)"
        )
    targets_columns = _columns(conn, schema, "targets")
    if targets_columns is None:
        raise UserError(
            f"no targets to train on: table {_table(schema, 'targets')} does not exist (load the seeds first)"
        )
    if "sample_index" not in dict(samples_columns):
        raise UserError(f"table {_table(schema, 'samples')} has no column sample_index")
    missing = [name for name in ("sample_index", LABEL) if name not in dict(targets_columns)]
    if missing:
        raise UserError(f"table {_table(schema, 'targets')} has no column {', '.join(missing)}")
    features = [name for name, kind in samples_columns if name not in KEY_COLUMNS and kind.startswith(NUMERIC_TYPES)]
    if not features:
        raise UserError(f"table {_table(schema, 'samples')} has no numeric feature column")

    samples, targets = sql.Identifier(schema, "samples"), sql.Identifier(schema, "targets")
    count = conn.execute(sql.SQL("select count(*) from {}").format(samples)).fetchone()[0]
    if count == 0:
        raise UserError(f"no samples to train on: table {_table(schema, 'samples')} is empty")
    for table, name in ((samples, "samples"), (targets, "targets")):
        repeated = [
            row[0]
            for row in conn.execute(
                sql.SQL("select sample_index from {} group by sample_index having count(*) > 1 order by 1").format(
                    table
                )
            )
        ]
        if repeated:
            raise UserError(
                f"{len(repeated)} sample_index values occur more than once in {_table(schema, name)}"
                f" (sample_index {_listed(repeated)})"
            )
    orphans = [
        row[0]
        for row in conn.execute(
            sql.SQL(
                "select sample_index from {samples} as s where not exists"
                " (select from {targets} as t where t.sample_index = s.sample_index) order by 1"
            ).format(samples=samples, targets=targets)
        )
    ]
    if orphans:
        raise UserError(
            f"{len(orphans)} of {count} samples have no target in {_table(schema, 'targets')}"
            f" (sample_index {_listed(orphans)})"
        )

    query = sql.SQL(
        "select s.sample_index, {features}, t.{label} from {samples} as s"
        " inner join {targets} as t on t.sample_index = s.sample_index order by s.sample_index"
    ).format(
        features=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(name)) for name in features),
        label=sql.Identifier(LABEL),
        samples=samples,
        targets=targets,
    )
    rows = conn.execute(query).fetchall()
    frame = pd.DataFrame(rows, columns=["sample_index", *features, LABEL]).set_index("sample_index")
    for column in [*features, LABEL]:
        nulls = frame.index[frame[column].isna()].tolist()
        if nulls:
            where = _table(schema, "targets" if column == LABEL else "samples")
            plural = "s" if len(nulls) > 1 else ""
            raise UserError(f'{where}."{column}" holds {len(nulls)} NULL value{plural} (sample_index {_listed(nulls)})')
    dataset = Dataset(frame[features].astype("float64"), frame[LABEL].astype("int64"))
    if len(dataset.labels) < 2:
        raise UserError(
            f"the targets hold a single class ({dataset.labels[0]}) in {_table(schema, 'targets')}:"
            " a classifier needs at least two"
        )
    return dataset


def make_split(dataset: Dataset, test_size: float, random_state: int) -> Split:
    """A stratified, seeded split; the test split in sample_index order (the batch order)."""
    from sklearn.model_selection import train_test_split

    try:
        x_train, x_test, y_train, y_test = train_test_split(
            dataset.features,
            dataset.classes,
            test_size=test_size,
            random_state=random_state,
            stratify=dataset.classes,
        )
    except ValueError as exc:
        raise UserError(
            f"cannot split {len(dataset.classes)} samples into a stratified {test_size:.0%} test split: {exc}"
        ) from None
    return Split(x_train.sort_index(), x_test.sort_index(), y_train.sort_index(), y_test.sort_index())


# --- 2. evaluate ----------------------------------------------------------------------


def _aligned(probabilities: np.ndarray, model_classes: Sequence, labels: Sequence[int]) -> np.ndarray:
    """predict_proba's columns (the model's classes_) spread onto the dataset's labels."""
    positions = {int(label): column for column, label in enumerate(model_classes)}
    unknown = set(positions) - set(labels)
    if unknown:
        raise ValueError(f"the model predicts classes the dataset does not have: {sorted(unknown)}")
    aligned = np.zeros((probabilities.shape[0], len(labels)))
    for column, label in enumerate(labels):
        if label in positions:
            aligned[:, column] = probabilities[:, positions[label]]
    return aligned


def evaluate(model, split: Split, labels: Sequence[int]) -> Evaluation:
    """Predictions and probabilities on the test split, with scikit-learn's metrics."""
    from sklearn import metrics as m

    y_true = split.y_test.to_numpy()
    predicted = np.asarray(model.predict(split.x_test)).astype("int64")
    probabilities = _aligned(np.asarray(model.predict_proba(split.x_test)), model.classes_, labels)
    labels = list(labels)
    # named as the marts name them; logged under var mlflow_metric_names' keys (see _log_metrics)
    scores = {
        "accuracy": m.accuracy_score(y_true, predicted),
        "precision_weighted": m.precision_score(y_true, predicted, labels=labels, average="weighted", zero_division=0),
        "recall_weighted": m.recall_score(y_true, predicted, labels=labels, average="weighted", zero_division=0),
        "f1_weighted": m.f1_score(y_true, predicted, labels=labels, average="weighted", zero_division=0),
        # the champion's criterion, next to the evaluator's weighted F1
        "f1_macro": m.f1_score(y_true, predicted, labels=labels, average="macro", zero_division=0),
        "log_loss": m.log_loss(y_true, probabilities, labels=labels),
    }
    try:
        scores["roc_auc"] = m.roc_auc_score(y_true, probabilities, labels=labels, multi_class="ovr", average="macro")
    except ValueError as exc:  # a class absent from the test split has no ROC curve
        log.warning("roc_auc not logged: %s", exc)
    history: dict[str, list[float]] = {}
    if hasattr(model, "staged_predict_proba"):  # boosting: the test log_loss after each stage
        history["staged_log_loss"] = [
            m.log_loss(y_true, _aligned(stage, model.classes_, labels), labels=labels)
            for stage in model.staged_predict_proba(split.x_test)
        ]
    if hasattr(model, "train_score_"):  # boosting: the training loss after each stage
        history["train_loss"] = [float(value) for value in model.train_score_]
    return Evaluation(predicted, probabilities, {k: float(v) for k, v in scores.items()}, history)


def choose_champion(runs: Sequence[RunResult], metric: str = "f1_macro") -> RunResult:
    """Best `metric` (macro F1 by default); ties to the lower log_loss, then the lower version number."""
    sign = 1 if metric in promotion.LOWER_IS_BETTER else -1
    return min(
        runs,
        key=lambda run: (
            sign * round(run.metrics.get(metric, -sign * float("inf")), 12),
            round(run.metrics["log_loss"], 12),
            int(run.version),
        ),
    )


def _describe(model) -> str:
    """`Pipeline(StandardScaler, LogisticRegression)` or the class name."""
    steps = getattr(model, "steps", None)
    if steps:
        return f"{type(model).__name__}({', '.join(_describe(step) for _, step in steps)})"
    inner = getattr(model, "estimator", None)
    if inner is not None and hasattr(inner, "get_params"):
        return f"{type(model).__name__}({_describe(inner)})"
    return type(model).__name__


# --- 3. track and store ---------------------------------------------------------------


@dataclass
class _Session:
    """What every run of one `train` invocation shares."""

    conn: psycopg.Connection
    settings: Settings
    client: object  # mlflow.MlflowClient
    experiment_id: str
    split: Split
    labels: list[int]
    datasets: dict[str, object]  # context -> mlflow dataset
    tags: dict[str, str]
    pip_requirements: list[str]
    dataset_id: int = 0  # the registered dataset (datasets.register_seeds)
    sample_indexes: list[int] = field(default_factory=list)  # the test split's, in the Dataset Database


def _split_params(settings: Settings, split: Split) -> dict[str, object]:
    return {
        "test_size": settings.test_size,
        "split_random_state": settings.random_state,
        "stratify": True,
        "n_train": len(split.y_train),
        "n_test": len(split.y_test),
    }


def _pip_requirements() -> list[str]:
    """Pinned requirements, stated rather than inferred (inference loads each model in a subprocess)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "scikit-learn", "skops", "numpy", "scipy", "pandas")]


def _experiment(client, settings: Settings, database: str) -> str:
    from ml_eval.producer import tracking

    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        return client.create_experiment(
            settings.experiment,
            artifact_location=tracking.artifact_location(settings.artifacts_dir, database, settings.experiment),
        )
    if experiment.lifecycle_stage != "active":
        raise UserError(f"MLflow experiment {settings.experiment!r} is deleted: restore it or name another")
    return experiment.experiment_id


def _log_metrics(
    client, run_id: str, model_id: str, evaluation: Evaluation, datasets: dict, metric_keys: dict[str, str]
) -> None:
    """The test-split scores at step 0, each under the first key var mlflow_metric_names gives it (and
    `example_count`, as MLflow's evaluator logs it), and the per-stage history, linked to the
    model and dataset."""
    from mlflow.entities import Metric

    def metric(key: str, value: float, step: int, context: str) -> Metric:
        dataset = datasets[context]
        return Metric(
            key, value, now, step, model_id=model_id, dataset_name=dataset.name, dataset_digest=dataset.digest
        )

    now = int(time.time() * 1000)
    n_test = float(len(evaluation.predicted))
    metrics = [metric(metric_keys.get("example_count", "example_count"), n_test, 0, "evaluation")]
    metrics += [
        metric(metric_keys.get(name, name), value, 0, "evaluation") for name, value in evaluation.metrics.items()
    ]
    for key, values in evaluation.history.items():
        context = "training" if key.startswith("train_") else "evaluation"
        metrics += [metric(key, value, step, context) for step, value in enumerate(values, start=1)]
    for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
        client.log_batch(run_id, metrics=metrics[start : start + 1000])


def _ensure_registered_model(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(name, description="Wine classifiers trained by `ml-eval train`.")


def _run(candidate: Candidate, session: _Session) -> RunResult:
    import mlflow
    import mlflow.sklearn
    from mlflow.entities import Param
    from mlflow.models import infer_signature

    from ml_eval.producer import tracking

    settings, client, split = session.settings, session.client, session.split
    model = candidate.build()
    tags = {**session.tags, settings.model_family_tag: candidate.family, "estimator": _describe(model)}
    with (
        tracking.mlflow_quietly(),
        mlflow.start_run(experiment_id=session.experiment_id, run_name=candidate.name, tags=tags) as run,
    ):
        run_id = run.info.run_id
        params = {**hyperparameters(model, candidate.hyperparameters), **_split_params(settings, split)}
        client.log_batch(run_id, params=[Param(key, str(value)) for key, value in params.items()])

        model.fit(split.x_train, split.y_train)
        evaluation = evaluate(model, split, session.labels)

        with session.conn.transaction():  # rolled back if anything below raises
            predictions.write_batch(
                session.conn,
                run_id,
                session.sample_indexes,
                evaluation.predicted,
                evaluation.probabilities,
                session.labels,
                schema=settings.dataset_schema,
                dataset_id=session.dataset_id,
            )
            for context, dataset in session.datasets.items():
                mlflow.log_input(dataset, context=context)
            # Registered through the client, not log_model(registered_model_name=), which prints
            # to stderr; metrics logged after the model so they link to it and to their dataset
            # (log_model re-logs a run's earlier metrics with its model id, colliding on the key).
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(split.x_test, evaluation.predicted),
                pip_requirements=session.pip_requirements,
                skops_trusted_types=tracking.skops_trusted_types(model),
            )
            _log_metrics(client, run_id, info.model_id, evaluation, session.datasets, settings.metric_keys)
            _ensure_registered_model(client, settings.registered_model)
            version = client.create_model_version(
                settings.registered_model,
                source=info.model_uri,
                run_id=run_id,
                model_id=info.model_id,
                tags={settings.model_family_tag: candidate.family, "run_name": candidate.name},
            ).version
    return RunResult(candidate.name, candidate.family, run_id, version, evaluation.metrics)


def train(
    warehouse: Warehouse,
    settings: Settings,
    candidates: Sequence[Candidate] | None = None,
    report: Callable[[str], None] = log.info,
) -> TrainResult:
    """Validate the data, train every candidate as one MLflow run, crown the champion."""
    candidates = list(candidates) if candidates is not None else default_candidates(settings.random_state)
    if not candidates:
        raise UserError("no candidate models to train")
    with warehouse.connect(autocommit=True, refuse_views=True) as conn:
        dataset = read_dataset(conn, settings.seed_schema)
        split = make_split(dataset, settings.test_size, settings.random_state)
        log.info(
            "read %d samples, %d features, classes %s", len(dataset.classes), dataset.features.shape[1], dataset.labels
        )

        # The input is valid: from here on things are written.
        from ml_eval.producer import tracking

        tracking.quiet_mlflow()
        import mlflow

        uri = settings.mlflow_uri or tracking.tracking_uri(warehouse, settings.mlflow_schema)
        with conn.transaction():  # the seeds are registered in the Dataset Database like any dataset
            datasets_db.ensure_tables(conn, settings.dataset_schema)
            registered = datasets_db.register_seeds(conn, settings.seed_schema, settings.dataset_schema)
            documented_index = dict(
                conn.execute(
                    sql.SQL("select sample_key, sample_index from {} where dataset_id = %s").format(
                        sql.Identifier(settings.dataset_schema, "samples")
                    ),
                    (registered.dataset_id,),
                ).fetchall()
            )
        log.info("dataset %r (id %d): %s", registered.name, registered.dataset_id, registered.status)
        mlflow.set_tracking_uri(uri)  # the fluent API (start_run, log_model) reads these
        mlflow.set_registry_uri(uri)
        with tracking.mlflow_quietly():
            client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
            experiment_id = _experiment(client, settings, warehouse.database)
            source = tracking.WarehouseTableSource(warehouse.database, settings.dataset_schema, ["samples", "targets"])
            datasets = {
                context: mlflow.data.from_pandas(
                    x.assign(**{LABEL: y}).reset_index(drop=True),
                    source=source,
                    targets=LABEL,
                    name=f"{settings.dataset_schema}.samples:{part}",
                )
                for context, part, x, y in (
                    ("training", "train", split.x_train, split.y_train),
                    ("evaluation", "test", split.x_test, split.y_test),
                )
            }
        commit = tracking.git_commit(settings.project_dir)
        session = _Session(
            conn=conn,
            settings=settings,
            client=client,
            experiment_id=experiment_id,
            split=split,
            labels=dataset.labels,
            dataset_id=registered.dataset_id,
            sample_indexes=[documented_index[str(i)] for i in split.x_test.index.tolist()],
            datasets=datasets,
            tags={settings.git_commit_tag: commit} if commit else {},
            pip_requirements=_pip_requirements(),
        )
        results = []
        for candidate in candidates:
            try:
                result = _run(candidate, session)
            except Exception as exc:
                log.info("run %s failed", candidate.name, exc_info=True)
                detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise UserError(
                    f"run {candidate.name} ({candidate.family}) failed and is marked FAILED in MLflow,"
                    f" its predictions rolled back: {type(exc).__name__}: {detail}"
                ) from exc
            results.append(result)
            report(
                f"run {result.name:<24} {result.family:<13} accuracy {result.metrics['accuracy']:.4f}"
                f"  macro F1 {result.metrics['f1_macro']:.4f}"
                f"  ({settings.registered_model} v{result.version}, run {result.run_id})"
            )
        best = choose_champion(results, settings.rule.metric)
        rule = settings.rule
        value = best.metrics.get(rule.metric, float("nan"))
        with tracking.mlflow_quietly():
            holder = promotion.current_holder(
                client,
                conn,
                rule,
                candidate_run_id=best.run_id,
                registered_model=settings.registered_model,
                dataset_schema=settings.dataset_schema,
                dataset_id=session.dataset_id,
                sample_indexes=session.sample_indexes,
                metric_names=settings.metric_names,
            )
            decision = promotion.decide(rule, value, holder)
            promotion.apply(client, rule, settings.registered_model, best.version, decision, value)
        alias = rule.champion_alias if decision.promoted else rule.challenger_alias
        report(
            f"{alias}: {settings.registered_model} v{best.version} = run {best.name}"
            f" ({best.family}), macro F1 {best.metrics['f1_macro']:.4f},"
            f" log_loss {best.metrics['log_loss']:.4f}: {decision.reason}"
        )
    return TrainResult(results, best, decision)
