"""The paired comparison of every run with its reference equals SciPy's exact McNemar test.

On a clone of the demo database (the Wine runs of `ml-eval train`), runs are added through the
project's own commands (`ml-eval load-dataset`, `ml-eval load-predictions`, real MLflow runs
and registered versions): a registered model with a weak champion, a run identical to it
(b = c = 0), a run that beats it clearly and a run predicting a subset of the samples; and, on
a dataset of 6,000 samples, runs of a group with no champion whose discordant pairs number in
the thousands (a p-value near 1, a tiny one, one below float8's range). Every row of
fct_run_comparisons and the leaderboard's new columns are checked against an independent
computation: the reference chosen from MLflow's aliases and a ranking by scikit-learn's
metrics, the paired counts with pandas from the source tables, the p-value with SciPy's
`binomtest`, to 1e-9 relative.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy.stats import binomtest
from sklearn import metrics as m

from conftest import CONFIG, clone_database, drop_database
from ml_eval import cli
from ml_eval import warehouse as wh
from ml_eval.dbt import run_dbt

pytestmark = pytest.mark.usefixtures("isolated_environment")

TOLERANCE = 1e-9
ALPHA = CONFIG.var("comparison_alpha")
LARGE = 6000  # samples of the large dataset
# the leaderboard's columns before the comparison, in their order: kept, the new ones after
LEADERBOARD_COLUMNS = [
    "run_uuid", "experiment_name", "run_name", "model_family", "registered_model_name", "model_version",
    "is_champion", "n_predictions", "coverage", "is_partial_evaluation", "accuracy", "balanced_accuracy",
    "f1_macro", "f1_weighted", "log_loss", "roc_auc", "agrees_with_mlflow", "started_at", "experiment_rank",
    "registered_model_rank", "dataset_id", "dataset_name", "group_kind", "group_name", "group_rank",
]  # fmt: skip
NEW_LEADERBOARD_COLUMNS = ["reference_run_uuid", "mcnemar_p_value", "beats_champion_beyond_chance"]


def _env(database: wh.Warehouse) -> dict[str, str]:
    return {**database.env(), "MLFLOW_TRACKING_URI": database.sqlalchemy_url(CONFIG.mlflow_schema)}


def _client(database: wh.Warehouse) -> MlflowClient:
    url = database.sqlalchemy_url(CONFIG.mlflow_schema)
    return MlflowClient(url, url)


def _load_run(client: MlflowClient, experiment: str, name: str, dataset: str, keys, predicted, path) -> str:
    """A finished MLflow run whose predictions come in with `ml-eval load-predictions`."""
    run = client.create_run(experiment, run_name=name).info.run_id
    pd.DataFrame({"sample_key": keys, "predicted": predicted}).to_csv(path, index=False)
    assert cli.main(["load-predictions", "--run-id", run, "--dataset", dataset, str(path)]) == 0
    client.set_terminated(run, "FINISHED")
    return run


def _register(client: MlflowClient, model: str, run: str) -> str:
    return client.create_model_version(model, source=f"runs:/{run}/model", run_id=run).version


def _wine_runs(database: wh.Warehouse, client: MlflowClient, work) -> dict[str, str]:
    """Registered model cmp-wine, champion `weak` (wrong on every third sample), with a run
    identical to it, one that is always right and one right on the first 50 samples only."""
    with database.connect() as conn:
        rows = conn.execute(
            "select s.sample_key, c.label from dataset.samples as s"
            " join dataset.datasets as d using (dataset_id) join dataset.targets as t using (sample_index)"
            " join dataset.classes as c on c.dataset_id = d.dataset_id and c.class = t.class"
            " where d.name = 'UCI Wine' order by s.sample_index"
        ).fetchall()
    keys = [r[0] for r in rows]
    truth = [r[1] for r in rows]
    labels = sorted(set(truth))
    weak = [labels[(labels.index(t) + 1) % len(labels)] if i % 3 == 0 else t for i, t in enumerate(truth)]
    experiment = client.create_experiment("comparisons")
    runs = {
        "weak": _load_run(client, experiment, "weak", "UCI Wine", keys, weak, work / "weak.csv"),
        "identical": _load_run(client, experiment, "identical", "UCI Wine", keys, weak, work / "identical.csv"),
        "strong": _load_run(client, experiment, "strong", "UCI Wine", keys, truth, work / "strong.csv"),
        "subset": _load_run(client, experiment, "subset", "UCI Wine", keys[:50], truth[:50], work / "subset.csv"),
    }
    client.create_registered_model("cmp-wine")
    versions = {name: _register(client, "cmp-wine", run) for name, run in runs.items()}
    client.set_registered_model_alias("cmp-wine", CONFIG.var("champion_alias"), versions["weak"])
    return runs


def _large_runs(client: MlflowClient, work) -> dict[str, str]:
    """6,000 samples of two classes; `top` is right on 3,400 of them. The others differ from it
    by design, in b (right where top is wrong) and c (the reverse): thousands of discordant
    pairs each way, so p-values from near 1 to below float8's range. Unregistered but for one,
    registered to a model with no champion: a group with no champion either way."""
    rng = np.random.default_rng(17)
    truth = rng.integers(0, 2, LARGE)
    keys = [f"s{i:05d}" for i in range(LARGE)]
    pd.DataFrame({"sample_key": keys, "feature": rng.normal(size=LARGE), "target": truth}).to_csv(
        work / "large.csv", index=False
    )
    assert cli.main(["load-dataset", "cmp-large", str(work / "large.csv")]) == 0
    order = rng.permutation(LARGE)
    top_right, top_wrong = order[:3400], order[3400:]

    def differing(b: int, c: int) -> np.ndarray:
        """Right where top is right, except on c of those; wrong where top is wrong, except on b."""
        right = np.zeros(LARGE, dtype=bool)
        right[top_right[c:]] = True
        right[top_wrong[:b]] = True
        return np.where(right, truth, 1 - truth)

    top = np.zeros(LARGE, dtype=bool)
    top[top_right] = True
    designs = {
        "top": np.where(top, truth, 1 - truth),
        "near_even": differing(2550, 2600),  # b + c = 5,150, p near 1
        "clearly_worse": differing(2400, 2700),  # p about 3e-5
        "tiny": differing(400, 1500),  # p about 1e-150
        "beyond_float8": differing(100, 2500),  # p below 1e-300: 0
    }
    experiment = client.create_experiment("comparisons-large")
    runs = {
        name: _load_run(client, experiment, name, "cmp-large", keys, predicted.tolist(), work / f"{name}.csv")
        for name, predicted in designs.items()
    }
    client.create_registered_model("cmp-no-champion")
    _register(client, "cmp-no-champion", runs["near_even"])
    return runs


@pytest.fixture(scope="module")
def compared(built: wh.Warehouse, tmp_path_factory):
    """The demo's database cloned, with the comparison's cases added and built."""
    copy = clone_database(built, f"{built.database}_cmp")
    work = tmp_path_factory.mktemp("cmp")
    os.environ.update(_env(copy))
    client = _client(copy)
    runs = {**_wine_runs(copy, client, work), **_large_runs(client, work)}
    run_dbt(["build"], copy)
    yield copy, runs
    drop_database(copy)


def _frame(database: wh.Warehouse, query: str, params=()) -> pd.DataFrame:
    with database.connect() as conn:
        cur = conn.execute(query, params)
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def _source_predictions(database: wh.Warehouse) -> pd.DataFrame:
    """Every prediction with its target, straight from the producer's tables."""
    return _frame(
        database,
        "select p.run_uuid, p.sample_index, p.class as predicted, t.class as actual"
        " from dataset.predictions as p join dataset.targets as t using (sample_index)",
    )


def _references(database: wh.Warehouse, predictions: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """run -> (reference, kind), from MLflow's registry and runs and a ranking by scikit-learn's
    metrics, without the marts: the champion of the model the run is registered to when its run
    is evaluated on the same dataset, else the experiment's top run on the run's dataset."""
    runs = _frame(
        database,
        "select r.run_uuid, r.experiment_id, r.start_time, d.dataset_id from mlflow.runs as r"
        " join dataset.run_datasets as d using (run_uuid)"
        " where r.status = 'FINISHED' and r.lifecycle_stage = 'active'"
        " and exists (select from dataset.predictions as p where p.run_uuid = r.run_uuid)",
    ).set_index("run_uuid")
    rows = []
    for run, group in predictions.groupby("run_uuid"):
        if run not in runs.index:
            continue
        rows.append(
            {
                "run_uuid": run,
                "n": len(group),
                "f1_macro": m.f1_score(group.actual, group.predicted, average="macro", zero_division=0),
                "accuracy": m.accuracy_score(group.actual, group.predicted),
            }
        )
    ranked = pd.DataFrame(rows).set_index("run_uuid").join(runs)
    fullest = ranked.groupby(["experiment_id", "dataset_id"])["n"].transform("max")
    ranked["is_partial"] = ranked["n"] / fullest < CONFIG.var("min_coverage")
    client = _client(database)
    listed: dict[str, tuple[str, bool, int]] = {}  # run -> (model, is champion version, created)
    champions: dict[str, str] = {}
    for model in client.search_registered_models():
        champion = model.aliases.get(CONFIG.var("champion_alias")) if model.aliases else None
        for version in client.search_model_versions(f"name = '{model.name}'"):
            is_champion = champion is not None and str(version.version) == str(champion)
            if is_champion:
                champions[model.name] = version.run_id
            held = listed.get(version.run_id)
            key = (is_champion, version.creation_timestamp)
            if held is None or key > (held[1], held[2]):
                listed[version.run_id] = (model.name, is_champion, version.creation_timestamp)
    references = {}
    for run, row in ranked.iterrows():
        model = listed.get(run, (None,))[0]
        champion = champions.get(model)
        if champion in ranked.index and ranked.loc[champion, "dataset_id"] == row.dataset_id:
            references[run] = (champion, "champion")
            continue
        # the leaderboard's ranking but log loss, which decides no top run here: the experiments
        # without a champion (the large one) store no probabilities and tie on no metric
        peers = ranked[(ranked.experiment_id == row.experiment_id) & (ranked.dataset_id == row.dataset_id)]
        order = peers.assign(neg_f1=-peers.f1_macro, neg_accuracy=-peers.accuracy, run=peers.index)
        top = order.sort_values(["is_partial", "neg_f1", "neg_accuracy", "start_time", "run"]).index[0]
        references[run] = (top, "experiment_top")
    return references


def _expected(database: wh.Warehouse) -> pd.DataFrame:
    """What fct_run_comparisons must hold, computed with pandas and SciPy from the sources."""
    predictions = _source_predictions(database)
    predictions["right"] = predictions.predicted == predictions.actual
    by_run = {run: group.set_index("sample_index")["right"] for run, group in predictions.groupby("run_uuid")}
    rows = []
    for run, (reference, kind) in _references(database, predictions).items():
        paired = pd.concat([by_run[run].rename("run"), by_run[reference].rename("reference")], axis=1, join="inner")
        b = int((paired.run & ~paired.reference).sum())
        c = int((~paired.run & paired.reference).sum())
        p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
        rows.append(
            {
                "run_uuid": run,
                "reference_run_uuid": reference,
                "reference_kind": kind,
                "n_paired": len(paired),
                "n_run_only_correct": b,
                "n_reference_only_correct": c,
                "mcnemar_p_value": float(p),
                "is_better_beyond_chance": bool(b > c and p < ALPHA),
            }
        )
    return pd.DataFrame(rows).set_index("run_uuid").sort_index()


def _published(database: wh.Warehouse) -> pd.DataFrame:
    return _frame(database, "select * from published.fct_run_comparisons").set_index("run_uuid").sort_index()


def _assert_equal(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.index) == list(expected.index)
    exact = [c for c in expected.columns if c != "mcnemar_p_value"]
    pd.testing.assert_frame_equal(actual[exact], expected[exact], check_dtype=False)
    for run, p in expected.mcnemar_p_value.items():
        got = actual.loc[run, "mcnemar_p_value"]
        # SciPy's value below float8's normal range (1e-308) is itself imprecise (or 0)
        assert math.isclose(got, p, rel_tol=TOLERANCE, abs_tol=1e-300), (run, got, p)


def test_every_comparison_equals_scipy_and_an_independent_count(compared):
    database, runs = compared
    expected = _expected(database)
    _assert_equal(_published(database), expected)
    # the cases cover what they were made for
    row = expected.loc
    assert row[runs["identical"]].reference_run_uuid == runs["weak"]
    assert (row[runs["identical"]].n_run_only_correct, row[runs["identical"]].n_reference_only_correct) == (0, 0)
    assert row[runs["identical"]].mcnemar_p_value == 1.0
    assert row[runs["strong"]].is_better_beyond_chance and row[runs["strong"]].mcnemar_p_value < 1e-15
    assert row[runs["subset"]].n_paired == 50
    assert row[runs["weak"]].reference_run_uuid == runs["weak"]  # the champion against itself
    assert not row[runs["weak"]].is_better_beyond_chance
    for name in ("near_even", "clearly_worse", "tiny", "beyond_float8"):
        assert row[runs[name]].reference_run_uuid == runs["top"], name
        assert row[runs[name]].reference_kind == "experiment_top", name
    assert row[runs["near_even"]].n_run_only_correct + row[runs["near_even"]].n_reference_only_correct == 5150
    assert 0.3 < row[runs["near_even"]].mcnemar_p_value < 1
    assert 1e-160 < row[runs["tiny"]].mcnemar_p_value < 1e-140
    assert row[runs["beyond_float8"]].mcnemar_p_value == 0.0
    # and the Wine demo's own runs: each against the demo's champion
    demo = expected[expected.reference_kind == "champion"]
    assert len(demo) >= 8 + 4


def test_the_leaderboard_says_whether_each_run_beats_its_champion(compared):
    database, runs = compared
    board = _frame(database, "select * from published.rpt_model_leaderboard").set_index("run_uuid").sort_index()
    assert ["run_uuid", *board.columns] == LEADERBOARD_COLUMNS + NEW_LEADERBOARD_COLUMNS
    expected = _expected(database)
    assert list(board.index) == list(expected.index)
    assert list(board.reference_run_uuid) == list(expected.reference_run_uuid)
    assert list(board.beats_champion_beyond_chance) == list(expected.is_better_beyond_chance)
    for run, p in expected.mcnemar_p_value.items():
        assert math.isclose(board.loc[run, "mcnemar_p_value"], p, rel_tol=TOLERANCE, abs_tol=1e-300)
    assert board.loc[runs["strong"], "beats_champion_beyond_chance"]
    assert not board.loc[runs["identical"], "beats_champion_beyond_chance"]


def _row_versions(database: wh.Warehouse) -> dict[str, tuple[str, str]]:
    """run -> (xmin, ctid) of its row in marts.fct_run_comparisons: a rewritten row changes both."""
    with database.connect() as conn:
        rows = conn.execute("select run_uuid, xmin::text, ctid::text from marts.fct_run_comparisons").fetchall()
    return {run: (xmin, ctid) for run, xmin, ctid in rows}


def test_a_build_compares_again_only_the_runs_whose_reference_or_inputs_changed(compared, tmp_path):
    """Nothing new: no row rewritten. The champion moves: its model's runs are compared again
    with the new one, and no other run. A new run: it alone is compared."""
    database, runs = compared
    copy = clone_database(database, f"{database.database}_moved")
    try:
        os.environ.update(_env(copy))
        before = _row_versions(copy)
        run_dbt(["build"], copy)
        assert _row_versions(copy) == before

        client = _client(copy)
        strong = next(
            v.version for v in client.search_model_versions("name = 'cmp-wine'") if v.run_id == runs["strong"]
        )
        client.set_registered_model_alias("cmp-wine", CONFIG.var("champion_alias"), strong)
        run_dbt(["build"], copy)
        after = _row_versions(copy)
        moved = {runs[name] for name in ("weak", "identical", "strong", "subset")}
        assert {run for run in after if after[run] != before.get(run)} == moved
        expected = _expected(copy)
        _assert_equal(_published(copy), expected)
        assert expected.loc[runs["weak"]].reference_run_uuid == runs["strong"]
        assert expected.loc[runs["weak"]].n_reference_only_correct > 0

        # a new run of the large experiment, not its top: compared alone
        keys = [f"s{i:05d}" for i in range(LARGE)]
        experiment = client.get_experiment_by_name("comparisons-large").experiment_id
        with copy.connect() as conn:
            truth = dict(
                conn.execute(
                    "select s.sample_key, t.class from dataset.samples as s"
                    " join dataset.targets as t using (sample_index)"
                    " join dataset.datasets as d using (dataset_id) where d.name = 'cmp-large'"
                ).fetchall()
            )
        guesses = [str(truth[k]) if i % 2 else str(1 - truth[k]) for i, k in enumerate(keys)]
        newcomer = _load_run(client, experiment, "coin", "cmp-large", keys, guesses, tmp_path / "coin.csv")
        run_dbt(["build"], copy)
        latest = _row_versions(copy)
        assert {run for run in latest if latest[run] != after.get(run)} == {newcomer}
        _assert_equal(_published(copy), _expected(copy))
    finally:
        os.environ.update(_env(database))
        drop_database(copy)
