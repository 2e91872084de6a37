"""Several datasets, experiments and registered models side by side (issue 15, item 6).

A database holds the demo (Wine: experiment `wine-classification`, registered model
`wine-classifier`, champion at macro F1 1.0) and, alphabetically first, a worse group on
another dataset: scikit-learn's Iris, loaded with `ml-eval load-dataset` (string labels), with
real MLflow runs in experiment `a-iris` whose predictions a training script stores with
`log_predictions`; two are registered to `a-iris-classifier` (the champion alias on the better
one), one is not registered at all. The leaderboard must rank within each group and dataset,
and the report must give every group its own section and headline, its dataset named: never
the first group alphabetically as the page's answer.
"""

from __future__ import annotations

from pathlib import Path

import kuzu
import pytest
from mlflow import MlflowClient
from sklearn import metrics as skm

from conftest import CONFIG, drop_database, run_ml_eval
from ml_eval import log_predictions
from ml_eval import warehouse as wh
from ml_eval.consumers import graph
from ml_eval.consumers.report import build_report
from ml_eval.consumers.report import data as report_data
from test_lineage_graph import load_kuzu, rows
from test_report import Elements, Texts, by_group, ensure_chromium, group_sections, headline, query, run_chromium

IRIS = "iris"
EXPERIMENT = "a-iris"  # sorts before the demo's wine-classification
REGISTERED_MODEL = "a-iris-classifier"  # and before wine-classifier
WINE_EXPERIMENT, WINE_MODEL, WINE = CONFIG.experiment, CONFIG.registered_model, "UCI Wine"
ALIAS = CONFIG.var("champion_alias")


def iris_models():
    """(run name, estimator, registered?): real scikit-learn models, all worse than Wine's champion."""
    from sklearn.dummy import DummyClassifier
    from sklearn.tree import DecisionTreeClassifier

    return [
        ("iris-prior", DummyClassifier(strategy="prior"), True),
        ("iris-stump", DecisionTreeClassifier(max_depth=1, random_state=0), True),
        ("iris-uniform", DummyClassifier(strategy="uniform", random_state=0), False),
    ]


@pytest.fixture(scope="module")
def side_by_side(warehouse: wh.Warehouse, tmp_path_factory: pytest.TempPathFactory):
    """The built database and, per Iris run name, (run_uuid, macro F1 and accuracy by scikit-learn)."""
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    database = warehouse.with_database(warehouse.database + "_side")
    wh.ensure_database(database, fresh=True)
    tmp = tmp_path_factory.mktemp("side_by_side")
    try:
        run_ml_eval("demo", "--warn-error", "--no-docs", env=database.env())

        iris = load_iris(as_frame=True)
        features = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
        labels = iris.target.map(dict(enumerate(iris.target_names)))
        keys = [f"iris-{i:03d}" for i in range(len(features))]
        frame = features.assign(sample_key=keys, target=labels)
        frame.to_csv(tmp / "iris.csv", index=False)
        run_ml_eval("load-dataset", IRIS, str(tmp / "iris.csv"), env=database.env())

        x_train, x_test, y_train, y_test, _, keys_test = train_test_split(
            features, labels, keys, test_size=0.3, stratify=labels, random_state=0
        )
        url = database.sqlalchemy_url("mlflow")
        client = MlflowClient(url, url)
        experiment_id = client.create_experiment(EXPERIMENT, artifact_location=(tmp / "mlartifacts").as_uri())
        client.create_registered_model(REGISTERED_MODEL)
        runs, versions = {}, {}
        with pytest.MonkeyPatch.context() as env:  # log_predictions reads the warehouse as ml-eval does
            for name, value in database.env().items():
                env.setenv(name, value)
            for name, model, registered in iris_models():
                run_id = client.create_run(experiment_id, run_name=name, tags={"model_family": "baseline"}).info.run_id
                model.fit(x_train, y_train)
                predicted = model.predict(x_test)
                log_predictions(run_id, IRIS, keys_test, predicted, model.predict_proba(x_test), labels=model.classes_)
                client.set_terminated(run_id, "FINISHED")
                if registered:
                    versions[name] = client.create_model_version(
                        REGISTERED_MODEL, source=f"runs:/{run_id}/model", run_id=run_id
                    ).version
                runs[name] = (
                    run_id,
                    skm.f1_score(y_test, predicted, average="macro"),
                    skm.accuracy_score(y_test, predicted),
                )
        client.set_registered_model_alias(REGISTERED_MODEL, ALIAS, versions["iris-stump"])
        run_ml_eval("build", "--warn-error", "--no-docs", env=database.env())
        yield database, runs, client
    finally:
        drop_database(database)


@pytest.fixture(scope="module")
def board(side_by_side) -> list[dict]:
    return query(side_by_side[0], "select * from {schema}.rpt_model_leaderboard")


@pytest.fixture(scope="module")
def page_dom(side_by_side, tmp_path_factory: pytest.TempPathFactory) -> str:
    try:
        chromium = ensure_chromium()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    page = build_report(
        side_by_side[0], schema=CONFIG.published_schema, out_path=tmp_path_factory.mktemp("r") / "i.html"
    )
    return run_chromium(chromium, Path(page), "--dump-dom")


def test_the_iris_runs_are_scored_on_iris_as_scikit_learn_scores_them(side_by_side, board):
    _, runs, _ = side_by_side
    by_run = {r["run_uuid"]: r for r in board}
    for name, (run_uuid, f1, accuracy) in runs.items():
        row = by_run[run_uuid]
        assert row["dataset_name"] == IRIS and row["experiment_name"] == EXPERIMENT, name
        assert abs(row["f1_macro"] - f1) <= 1e-9 and abs(row["accuracy"] - accuracy) <= 1e-9, name
    assert {r["dataset_name"] for r in board if r["experiment_name"] == WINE_EXPERIMENT} == {WINE}


def test_the_leaderboard_ranks_within_each_group_and_dataset(side_by_side, board):
    _, runs, _ = side_by_side
    groups = {(r["group_kind"], r["group_name"], r["dataset_name"]) for r in board}
    assert groups == {
        ("registered_model", REGISTERED_MODEL, IRIS),
        ("registered_model", WINE_MODEL, WINE),
        ("experiment", EXPERIMENT, IRIS),
    }
    for kind, name, dataset in groups:
        members = [r for r in board if (r["group_kind"], r["group_name"], r["dataset_name"]) == (kind, name, dataset)]
        # the mart's own ordering, re-derived: full evaluations first, then macro F1, accuracy, log loss, start
        expected = sorted(
            members,
            key=lambda r: (r["is_partial_evaluation"], -r["f1_macro"], -r["accuracy"], r["log_loss"], r["started_at"]),
        )
        assert [r["group_rank"] for r in expected] == sorted(r["group_rank"] for r in members)
        assert min(r["group_rank"] for r in members) == 1
        assert sum(r["is_champion"] for r in members) == (1 if kind == "registered_model" else 0)
    by_run = {r["run_uuid"]: r for r in board}
    stump, prior, uniform = (by_run[runs[name][0]] for name in ("iris-stump", "iris-prior", "iris-uniform"))
    assert (stump["group_rank"], prior["group_rank"], uniform["group_rank"]) == (1, 2, 1)
    assert stump["is_champion"] and uniform["registered_model_name"] is None
    # the experiment ranks its runs together, registered or not
    assert uniform["experiment_rank"] > 1 and uniform["registered_model_rank"] is None
    # the worse, alphabetically first group really is worse: the page must not headline it
    wine_best = max(r["f1_macro"] for r in board if r["dataset_name"] == WINE)
    assert max(r["f1_macro"] for r in board if r["dataset_name"] == IRIS) < wine_best


def test_the_report_has_a_section_per_group_headed_by_its_own_champion(side_by_side, board, page_dom):
    _, runs, client = side_by_side
    dom, texts = Elements(page_dom), Texts(page_dom)
    sections = group_sections(dom)
    # the documented order: registered models by name, then experiments; never by score
    assert [
        (s.attrs["data-group-kind"], s.attrs["data-group-name"], s.attrs["data-dataset-name"]) for s in sections
    ] == [
        ("registered_model", REGISTERED_MODEL, IRIS),
        ("registered_model", WINE_MODEL, WINE),
        ("experiment", EXPERIMENT, IRIS),
    ]
    champions = {
        model: client.get_model_version_by_alias(model, ALIAS).run_id for model in (REGISTERED_MODEL, WINE_MODEL)
    }
    expected_headlines = [champions[REGISTERED_MODEL], champions[WINE_MODEL], runs["iris-uniform"][0]]
    assert [s.attrs["data-headline"] for s in sections] == expected_headlines
    assert champions[REGISTERED_MODEL] == runs["iris-stump"][0]

    groups = by_group(board)
    assert len(groups) == len(sections)
    overview = [r for r in dom.select("tr") if r.get("data-headline")]
    for section, row, members in zip(sections, overview, groups.values(), strict=True):
        top = headline(members)
        assert section.attrs["data-headline"] == row["data-headline"] == top["run_uuid"]
        assert row["data-dataset-name"] == top["dataset_name"] == section.attrs["data-dataset-name"]
        for column in ("f1_macro", "accuracy", "log_loss"):
            assert float(row[f"data-{column.replace('_', '-')}"]) == top[column], column
        assert [r["data-run-uuid"] for r in section.rows] == [r["run_uuid"] for r in members]
        assert [int(r["data-group-rank"]) for r in section.rows] == [r["group_rank"] for r in members]
        assert section.cards[0] == top["run_uuid"]
        assert len(section.cards) == min(report_data.TOP_RUNS, len(members))
    # each section's heading names its group and its dataset; the overview names every dataset
    headings = [h for h in texts.text("h2") if " on " in h]
    assert headings == [
        f"Registered model {REGISTERED_MODEL} on {IRIS}",
        f"Registered model {WINE_MODEL} on {WINE}",
        f"Experiment {EXPERIMENT} on {IRIS}",
    ]
    assert texts.text("td", "dataset-name") == [IRIS, WINE, IRIS]
    # the page's own tiles headline no run: counts and names only
    page_tiles = texts.text("div", "k")[:4]
    assert page_tiles == ["Evaluated runs", "Registered models", "Experiments", "Datasets"]
    assert texts.text("div", "v")[:4] == [
        str(len(board)),
        "2",
        f"{EXPERIMENT}, {WINE_EXPERIMENT}",
        f"{WINE}, {IRIS}",
    ]
    body = dom.select("body")[0]
    assert body["data-charts-rendered"] == body["data-charts"] != "0"
    # the Iris sections name the classes by their labels, as fct_confusion_matrix does
    iris_champion = sections[0].attrs["data-headline"]
    cells = [c for c in dom.select("rect", data_run_uuid=iris_champion) if "data-n" in c]
    assert {c["data-actual-class-name"] for c in cells} == {"setosa", "versicolor", "virginica"}
    assert {"setosa", "versicolor", "virginica"} <= set(texts.text("text", "tick"))


def test_the_graph_has_a_dataset_node_per_dataset_runs_are_evaluated_on(side_by_side, tmp_path: Path):
    database = side_by_side[0]
    graph.export_graph(database, CONFIG.published_schema, tmp_path / "export")
    cypher: kuzu.Connection = load_kuzu(tmp_path / "export", tmp_path / "graph.kuzu")
    project_datasets = rows(
        cypher,
        "MATCH (p:Project)-[:HAS]->(d:Dataset) WHERE d.origin = 'dataset_database' RETURN p.name, d.name, d.dataset_id",
    )
    datasets = query(database, f"select name, dataset_id from {CONFIG.dataset_schema}.datasets")
    ids = {r["name"]: r["dataset_id"] for r in datasets}
    assert sorted(project_datasets) == sorted([(EXPERIMENT, IRIS, ids[IRIS]), (WINE_EXPERIMENT, WINE, ids[WINE])])
    # every run names the dataset it is evaluated on, as the leaderboard does
    experiments = dict(rows(cypher, "MATCH (e:Experiment) RETURN e.run_uuid, e.dataset_name"))
    board = query(database, "select run_uuid, dataset_name from {schema}.rpt_model_leaderboard")
    assert all(experiments[r["run_uuid"]] == r["dataset_name"] for r in board)


def test_each_section_shows_its_own_runs_depth(side_by_side, board, page_dom):
    """Per section: the accuracy intervals of its own runs, the curves of its own top runs, and
    each run against its reference: the champion in a registered model's section, the
    experiment's top run in the section of runs never registered (a run of another section)."""
    database = side_by_side[0]
    comparisons = {r["run_uuid"]: r for r in query(database, "select * from {schema}.fct_run_comparisons")}
    sections = group_sections(Elements(page_dom))
    for section, members in zip(sections, by_group(board).values(), strict=True):
        runs = [r["run_uuid"] for r in members]
        dots = [m["data-run-uuid"] for m in section.depth if "data-accuracy" in m]  # not the cards' summaries
        assert dots == runs
        curves = {(m["data-curve"], m["data-run-uuid"]) for m in section.depth if "data-curve" in m}
        assert curves == {(c, r) for c in ("roc", "precision-recall", "calibration") for r in section.cards}
        bars = [m for m in section.depth if "data-side" in m]
        compared = [r for r in runs if comparisons[r]["reference_run_uuid"] != r]
        assert [b["data-run-uuid"] for b in bars] == [r for r in compared for _ in ("c", "b")]
        kinds = {b["data-reference-kind"] for b in bars}
        references = {b["data-reference-run-uuid"] for b in bars}
        if section.attrs["data-group-kind"] == "registered_model":
            assert kinds <= {"champion"} and references <= {section.attrs["data-headline"]}
        else:
            assert kinds == {"experiment_top"} and not references & set(runs), references
