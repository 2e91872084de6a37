"""`ml-eval export-graph`: the ML lineage graph (design document 002) as files Neo4j loads.

The graph is built by dbt (`marts.lineage_nodes`, `marts.lineage_edges`); this module only
reads those two tables (the published schema, `Config.published_schema`) and writes, into one
folder:

- `nodes_<Label>.csv`, one per node label: `node_id`, `name`, then the keys of the nodes'
  `properties`, sorted;
- `edges_<FromLabel>_<REL>_<ToLabel>.csv`, one per kind of relationship: `from_node_id`,
  `to_node_id`, `edge_id`;
- `load.cypher`, for Neo4j 5: uniqueness constraints, then `LOAD CSV WITH HEADERS FROM
  'file:///...'` with MERGE. Copy the folder's files into Neo4j's import directory and run
  it, e.g. `cypher-shell -f load.cypher`;
- `load_kuzu.cypher`, the same graph for the embedded Kùzu (its own DDL: `CREATE NODE TABLE`,
  `CREATE REL TABLE`, `COPY ... FROM`), with file names relative to the folder.

The five labels and five kinds of relationship of the design document always get a file (a
header alone when there is no such node or edge), so both scripts describe the whole schema.

CSV files are RFC 4180 (Python's `csv`, quotes doubled, UTF-8, `\\n` line ends); an empty
field is a missing value. A property's type comes from its JSON values across the label's
nodes: all booleans -> BOOLEAN, all integers in int64's range -> INT64, numbers -> DOUBLE
(non-finite ones written `NaN`, `Infinity`, `-Infinity`), anything else -> STRING (objects
and arrays as JSON text). Neo4j's LOAD CSV also reads `\\"` as an escaped quote unless
`dbms.import.csv.legacy_quote_escaping` is false: a value holding a backslash right before a
quote needs that setting.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from ml_eval import warehouse as wh
from ml_eval.errors import UserError

log = logging.getLogger(__name__)

OUT_DIR = "lineage_graph"  # under the project's target/
LABELS = ("Project", "Dataset", "Model", "Experiment", "Metric")
RELATIONSHIPS = (
    ("Project", "HAS", "Dataset"),
    ("Project", "HAS", "Model"),
    ("Model", "TRAINED_ON", "Dataset"),
    ("Experiment", "RUN", "Model"),
    ("Experiment", "HAS", "Metric"),
)
NODE_COLUMNS = ("node_id", "name")
EDGE_COLUMNS = ("from_node_id", "to_node_id", "edge_id")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
INT64 = (-(2**63), 2**63 - 1)
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
NEO4J_CAST = {"STRING": "{}", "INT64": "toInteger({})", "DOUBLE": "toFloat({})", "BOOLEAN": "toBoolean({})"}


@dataclass(frozen=True)
class Node:
    node_id: str
    label: str
    name: str
    properties: dict[str, object]


@dataclass(frozen=True)
class Edge:
    edge_id: str
    from_node_id: str
    relationship: str
    to_node_id: str
    from_label: str
    to_label: str


@dataclass(frozen=True)
class Graph:
    nodes: list[Node]
    edges: list[Edge]


# --- read ---------------------------------------------------------------------------


def read_graph(warehouse: wh.Warehouse, schema: str) -> Graph:
    """The rows of lineage_nodes and lineage_edges of `schema`, in node_id / edge_id order."""
    with warehouse.connect(refuse_views=True) as conn:
        for table in ("lineage_nodes", "lineage_edges"):
            name = sql.Identifier(schema, table).as_string(conn)
            if conn.execute("select to_regclass(%s)", (name,)).fetchone()[0] is None:
                raise UserError(
                    f"table {schema}.{table} does not exist in database {warehouse.database!r}:"
                    " build the models first (`ml-eval build`)"
                )
        nodes = [
            Node(node_id, label, name, properties or {})
            for node_id, label, name, properties in conn.execute(
                sql.SQL("select node_id, label, name, properties from {} order by node_id").format(
                    sql.Identifier(schema, "lineage_nodes")
                )
            )
        ]
        edges = [
            Edge(*row)
            for row in conn.execute(
                sql.SQL(
                    "select edge_id, from_node_id, relationship, to_node_id, from_label, to_label"
                    " from {} order by edge_id"
                ).format(sql.Identifier(schema, "lineage_edges"))
            )
        ]
    log.info("read %d nodes and %d edges from %s", len(nodes), len(edges), schema)
    return Graph(nodes, edges)


# --- schema -------------------------------------------------------------------------


def _identifier(kind: str, value: str) -> str:
    if not IDENTIFIER.fullmatch(value):
        raise UserError(f"{kind} {value!r} cannot be a graph identifier (letters, digits and _ only)")
    return value


def _is_number(value: object) -> bool:
    if isinstance(value, str):
        return value in NON_FINITE  # PostgreSQL's to_jsonb writes non-finite floats as strings
    return isinstance(value, int | float) and not isinstance(value, bool)


def property_type(values: Iterable[object]) -> str:
    """The Kùzu type of a property from its (JSON) values; nulls are ignored."""
    present = [value for value in values if value is not None]
    if not present:
        return "STRING"
    if all(isinstance(value, bool) for value in present):
        return "BOOLEAN"
    if all(isinstance(value, int) and not isinstance(value, bool) for value in present) and all(
        INT64[0] <= value <= INT64[1] for value in present
    ):
        return "INT64"
    if all(_is_number(value) for value in present):
        return "DOUBLE"
    return "STRING"


def node_properties(graph: Graph) -> dict[str, list[tuple[str, str]]]:
    """Per label (the design document's five first), its properties' (name, type), sorted."""
    labels = list(LABELS) + sorted({node.label for node in graph.nodes} - set(LABELS))
    found: dict[str, list[tuple[str, str]]] = {}
    for label in labels:
        _identifier("label", label)
        nodes = [node for node in graph.nodes if node.label == label]
        keys = sorted({key for node in nodes for key in node.properties})
        for key in keys:
            _identifier(f"property of {label}", key)
            if key in NODE_COLUMNS:
                raise UserError(f"{label} nodes have a property named {key!r}, which is a column already")
        found[label] = [(key, property_type(node.properties.get(key) for node in nodes)) for key in keys]
    return found


def relationship_kinds(graph: Graph) -> list[tuple[str, str, str]]:
    """The design document's five (from_label, relationship, to_label), then any other found."""
    found = {(edge.from_label, edge.relationship, edge.to_label) for edge in graph.edges}
    kinds = list(RELATIONSHIPS) + sorted(found - set(RELATIONSHIPS))
    for from_label, relationship, to_label in kinds:
        _identifier("label", from_label)
        _identifier("relationship", relationship)
        _identifier("label", to_label)
    return kinds


def node_file(label: str) -> str:
    return f"nodes_{label}.csv"


def edge_file(kind: tuple[str, str, str]) -> str:
    return "edges_{}_{}_{}.csv".format(*kind)


# --- write --------------------------------------------------------------------------


def csv_value(value: object, kind: str) -> str:
    """A property value as a CSV field; empty for null."""
    if value is None:
        return ""
    if kind == "BOOLEAN":
        return "true" if value else "false"
    if kind == "DOUBLE":
        number = NON_FINITE[value] if isinstance(value, str) else float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return repr(number)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def neo4j_script(properties: dict[str, list[tuple[str, str]]], kinds: list[tuple[str, str, str]]) -> str:
    lines = [
        "// The ML lineage graph of design document 002, for Neo4j 5 (written by `ml-eval export-graph`).",
        "// Copy the CSV files beside this script into Neo4j's import directory, then run it,",
        "// e.g. `cypher-shell -f load.cypher`. MERGE makes a re-run update rather than duplicate.",
        "",
    ]
    for label in properties:
        lines.append(
            f"CREATE CONSTRAINT lineage_{label.lower()}_node_id IF NOT EXISTS"
            f" FOR (n:`{label}`) REQUIRE n.node_id IS UNIQUE;"
        )
    lines.append("")
    for label, props in properties.items():
        assignments = ["n.name = row.name"] + [
            f"n.`{key}` = " + NEO4J_CAST[kind].format(f"row.`{key}`") for key, kind in props
        ]
        lines += [
            f"LOAD CSV WITH HEADERS FROM 'file:///{node_file(label)}' AS row",
            f"MERGE (n:`{label}` {{node_id: row.node_id}})",
            "SET " + ",\n    ".join(assignments) + ";",
            "",
        ]
    for kind in kinds:
        from_label, relationship, to_label = kind
        lines += [
            f"LOAD CSV WITH HEADERS FROM 'file:///{edge_file(kind)}' AS row",
            f"MATCH (a:`{from_label}` {{node_id: row.from_node_id}})",
            f"MATCH (b:`{to_label}` {{node_id: row.to_node_id}})",
            f"MERGE (a)-[r:`{relationship}`]->(b)",
            "SET r.edge_id = row.edge_id;",
            "",
        ]
    return "\n".join(lines)


def kuzu_script(properties: dict[str, list[tuple[str, str]]], kinds: list[tuple[str, str, str]]) -> str:
    """Kùzu's DDL and COPY statements, one per line; file names are relative to the export folder."""
    lines = [
        "// The ML lineage graph of design document 002, for the embedded graph database Kùzu",
        "// (written by `ml-eval export-graph`). Run it in this folder: file names are relative.",
    ]
    for label, props in properties.items():
        columns = ", ".join(["node_id STRING", "name STRING"] + [f"`{key}` {kind}" for key, kind in props])
        lines.append(f"CREATE NODE TABLE `{label}`({columns}, PRIMARY KEY (node_id));")
    for relationship in dict.fromkeys(kind[1] for kind in kinds):
        pairs = ", ".join(f"FROM `{a}` TO `{b}`" for a, rel, b in kinds if rel == relationship)
        lines.append(f"CREATE REL TABLE `{relationship}`({pairs}, edge_id STRING);")
    for label in properties:
        lines.append(f"COPY `{label}` FROM '{node_file(label)}' (header=true, parallel=false);")
    for kind in kinds:
        from_label, relationship, to_label = kind
        lines.append(
            f"COPY `{relationship}` FROM '{edge_file(kind)}'"
            f" (from='{from_label}', to='{to_label}', header=true, parallel=false);"
        )
    return "\n".join(lines) + "\n"


def kuzu_statements(script: str) -> list[str]:
    """The statements of a script written by `kuzu_script`: one a line, comments dropped."""
    return [line.strip() for line in script.splitlines() if line.strip() and not line.lstrip().startswith("//")]


def write_graph(graph: Graph, out_dir: Path) -> list[Path]:
    """Write the CSV files and both load scripts into out_dir; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    properties = node_properties(graph)
    kinds = relationship_kinds(graph)
    written = []
    for label, props in properties.items():
        types = dict(props)
        rows = (
            [node.node_id, node.name] + [csv_value(node.properties.get(key), types[key]) for key in types]
            for node in graph.nodes
            if node.label == label
        )
        written.append(_write_csv(out_dir / node_file(label), [*NODE_COLUMNS, *types], rows))
    for kind in kinds:
        rows = (
            [edge.from_node_id, edge.to_node_id, edge.edge_id]
            for edge in graph.edges
            if (edge.from_label, edge.relationship, edge.to_label) == kind
        )
        written.append(_write_csv(out_dir / edge_file(kind), EDGE_COLUMNS, rows))
    scripts = {"load.cypher": neo4j_script(properties, kinds), "load_kuzu.cypher": kuzu_script(properties, kinds)}
    for name, text in scripts.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    log.info("wrote %d files to %s", len(written), out_dir)
    return written


def export_graph(warehouse: wh.Warehouse, schema: str, out_dir: Path) -> list[Path]:
    """Read the lineage marts of the warehouse's `schema` and write the graph's files into out_dir."""
    return write_graph(read_graph(warehouse, schema), Path(out_dir))
