"""The ML lineage graph (design document 002): dbt's marts, exported and loaded into a real
openCypher engine (the embedded Kùzu), must answer the document's query as SQL does."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import kuzu
import pytest

from conftest import CONFIG
from ml_eval import warehouse as wh
from ml_eval.consumers import graph

DESIGN_QUERY = "MATCH (p:Project)-[:HAS]->(d:Dataset) RETURN p.name AS project_name, d.name AS dataset_name"
SQL_PROJECT_DATASETS = """
select projects.name, datasets.name
from {schema}.lineage_edges as edges
inner join {schema}.lineage_nodes as projects on edges.from_node_id = projects.node_id
inner join {schema}.lineage_nodes as datasets on edges.to_node_id = datasets.node_id
where edges.relationship = 'HAS' and projects.label = 'Project' and datasets.label = 'Dataset'
"""


def load_kuzu(export_dir: Path, database: Path) -> kuzu.Connection:
    """A Kùzu database built by the export's own load_kuzu.cypher (its file names are relative)."""
    connection = kuzu.Connection(kuzu.Database(str(database)))
    statements = graph.kuzu_statements((export_dir / "load_kuzu.cypher").read_text(encoding="utf-8"))
    here = Path.cwd()
    os.chdir(export_dir)
    try:
        for statement in statements:
            connection.execute(statement)
    finally:
        os.chdir(here)
    return connection


def rows(connection: kuzu.Connection, query: str) -> list[tuple]:
    return [tuple(row) for row in connection.execute(query).get_all()]


def sql_rows(warehouse: wh.Warehouse, query: str) -> list[tuple]:
    with warehouse.connect() as conn:
        return [tuple(row) for row in conn.execute(query.format(schema=CONFIG.published_schema))]


@pytest.fixture(scope="module")
def export_dir(built: wh.Warehouse, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lineage_graph")
    graph.export_graph(built, CONFIG.published_schema, out)
    return out


@pytest.fixture(scope="module")
def cypher(export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> kuzu.Connection:
    return load_kuzu(export_dir, tmp_path_factory.mktemp("kuzu") / "lineage.kuzu")


def test_design_document_query_answers_as_sql(built: wh.Warehouse, cypher: kuzu.Connection) -> None:
    answer = sorted(rows(cypher, DESIGN_QUERY))
    assert answer, "no Project HAS Dataset edge: the main job logs its datasets to MLflow"
    assert answer == sorted(sql_rows(built, SQL_PROJECT_DATASETS))


def test_nodes_per_label_agree(built: wh.Warehouse, cypher: kuzu.Connection) -> None:
    in_sql = dict(sql_rows(built, "select label, count(*) from {schema}.lineage_nodes group by label"))
    in_cypher = dict(rows(cypher, "MATCH (n) RETURN label(n), count(*)"))
    assert {label: n for label, n in in_cypher.items() if n} == in_sql
    assert set(graph.LABELS) <= set(in_sql), "every label of the design document has nodes"


def test_edges_per_relationship_agree(built: wh.Warehouse, cypher: kuzu.Connection) -> None:
    in_sql = {
        (a, rel, b): n
        for a, rel, b, n in sql_rows(
            built,
            "select from_label, relationship, to_label, count(*) from {schema}.lineage_edges"
            " group by from_label, relationship, to_label",
        )
    }
    in_cypher = {
        (a, rel, b): n
        for a, rel, b, n in rows(cypher, "MATCH (a)-[r]->(b) RETURN label(a), label(r), label(b), count(*)")
    }
    assert in_cypher == in_sql
    assert set(graph.RELATIONSHIPS) == set(in_sql), "every relationship of the design document has edges"


def test_every_node_and_name_survives_the_export(built: wh.Warehouse, cypher: kuzu.Connection) -> None:
    assert sorted(rows(cypher, "MATCH (n) RETURN label(n), n.node_id, n.name")) == sorted(
        sql_rows(built, "select label, node_id, name from {schema}.lineage_nodes")
    )
    champions = rows(cypher, "MATCH (e:Experiment)-[:RUN]->(m:Model) WHERE m.is_champion RETURN m.name")
    assert len(champions) == 1, "the champion alias points at one version, produced by one run"


def test_models_are_trained_on_their_training_dataset_only(cypher: kuzu.Connection) -> None:
    trained_on = rows(cypher, "MATCH (m:Model)-[:TRAINED_ON]->(d:Dataset) RETURN m.name, d.name")
    models = rows(cypher, "MATCH (m:Model) RETURN m.name")
    assert len(trained_on) == len(models)
    assert {dataset for _, dataset in trained_on} == {"dataset.samples:train"}


def test_runs_are_connected_to_the_dataset_they_are_evaluated_on(built: wh.Warehouse, cypher: kuzu.Connection) -> None:
    """The Dataset Database's Wine is a Dataset node its experiment HAS, and each run names it."""
    evaluated_on = rows(
        cypher,
        "MATCH (p:Project)-[:HAS]->(d:Dataset) WHERE d.origin = 'dataset_database'"
        " RETURN p.name, d.name, d.node_id, d.dataset_id",
    )
    wine = sql_rows(built, f"select dataset_id from {CONFIG.dataset_schema}.datasets where name = 'UCI Wine'")
    assert evaluated_on == [(CONFIG.experiment, "UCI Wine", f"dataset:database/{wine[0][0]}", wine[0][0])]
    runs = sql_rows(built, "select run_uuid, dataset_id, dataset_name from {schema}.dim_runs")
    assert sorted(rows(cypher, "MATCH (e:Experiment) RETURN e.run_uuid, e.dataset_id, e.dataset_name")) == sorted(runs)


def test_command_line_writes_the_files(built: wh.Warehouse, tmp_path: Path) -> None:
    env = {**os.environ, **built.env()}
    done = subprocess.run(
        [sys.executable, "-m", "ml_eval", "export-graph", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    written = [Path(line) for line in done.stdout.splitlines()]
    assert {path.name for path in written} >= {"load.cypher", "load_kuzu.cypher", "nodes_Project.csv"}
    assert all(path.parent == tmp_path and path.exists() for path in written)
    script = (tmp_path / "load.cypher").read_text(encoding="utf-8")
    for path in written:
        if path.suffix == ".csv":
            assert f"LOAD CSV WITH HEADERS FROM 'file:///{path.name}' AS row" in script

    missing = subprocess.run(
        [sys.executable, "-m", "ml_eval", "export-graph", "--out", str(tmp_path)],
        env={**env, "ML_EVAL_PUBLISHED_SCHEMA": "no_such_schema"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"ml-eval: error: table no_such_schema.lineage_nodes does not exist in database {built.database!r}:"
        " build the models first (`ml-eval build`)"
    )


def test_export_graph_is_a_cli_subcommand() -> None:
    from ml_eval import cli

    args = cli.parser().parse_args(["export-graph", "--out", "somewhere"])
    assert args.out == Path("somewhere") and args.handler is cli.cmd_export_graph


TRICKY = 'Wine "UCI", 1991\n— ünïcødé 葡萄酒, a back\\"slash, \'single\''


def test_awkward_values_round_trip_through_csv_and_kuzu(tmp_path: Path) -> None:
    """Quotes, commas, newlines, unicode and backslashes in names and properties; nulls and
    non-finite numbers; no database needed."""
    nodes = [
        graph.Node("project:1", "Project", TRICKY, {"experiment_id": 1, "note": TRICKY}),
        graph.Node("project:2", "Project", "", {"experiment_id": 2, "note": None}),
        graph.Node("dataset:a,b", "Dataset", 'd "1"', {"source": {"tables": ["s.t"]}}),
        graph.Node("metric:x:nan", "Metric", "loss", {"value": "NaN", "is_nan": True}),
        graph.Node("metric:x:inf", "Metric", "gain", {"value": "-Infinity", "is_nan": False}),
        graph.Node("metric:x:one", "Metric", "accuracy", {"value": 1, "is_nan": False}),
        graph.Node("metric:x:tenth", "Metric", "f1", {"value": 0.1, "is_nan": None}),
    ]
    edges = [graph.Edge("e1", "project:1", "HAS", "dataset:a,b", "Project", "Dataset")]
    export = tmp_path / "export"
    graph.write_graph(graph.Graph(nodes, edges), export)

    with (export / "nodes_Project.csv").open(newline="", encoding="utf-8") as handle:
        assert next(iter(csv.DictReader(handle)))["name"] == TRICKY
    cypher = load_kuzu(export, tmp_path / "tricky.kuzu")
    assert rows(cypher, DESIGN_QUERY) == [(TRICKY, 'd "1"')]
    assert sorted(rows(cypher, "MATCH (p:Project) RETURN p.node_id, p.name, p.note, p.experiment_id")) == [
        ("project:1", TRICKY, TRICKY, 1),
        ("project:2", None, None, 2),  # an empty field is a missing value
    ]
    assert rows(cypher, "MATCH (d:Dataset) RETURN d.source") == [(json.dumps({"tables": ["s.t"]}),)]
    values = dict(rows(cypher, "MATCH (m:Metric) RETURN m.name, m.value"))
    assert values["gain"] == float("-inf") and values["accuracy"] == 1.0 and values["f1"] == 0.1
    assert values["loss"] != values["loss"]  # NaN
    assert rows(cypher, "MATCH (m:Metric) WHERE m.is_nan RETURN m.name") == [("loss",)]
