"""`ml-eval rules`: the project-structure rules of dbt Labs' dbt-project-evaluator, over dbt's artifacts.

dbt-project-evaluator is a dbt package that needs its own models built in the warehouse;
these are its rules that matter here, checked in Python over `target/manifest.json` (written
by `dbt parse`) and, when present, `target/catalog.json` (written by `dbt docs generate`):

- layers: only staging models read sources, staging models read nothing but sources and
  seeds, and no model reads both a source and a model (evaluator: fct_marts_or_intermediate_
  dependent_on_source, fct_staging_dependent_on_staging / _on_marts_or_intermediate,
  fct_direct_join_to_source);
- names: a model's name starts with a prefix of the layer folder it is in (fct_model_naming_
  conventions, fct_model_directories), per the table `LAYERS` below;
- primary keys: every model has one, tested (fct_missing_primary_key_tests);
- documentation, 100%: every model, source, seed, exposure and project macro (generic tests
  included) and every column of a model, source or seed has a description (fct_undocumented_*,
  fct_documentation_coverage). The columns are those declared in YAML plus, with a catalog,
  those the relation really has; a model or seed column declared in YAML that the relation
  does not have is reported too.

`check()` returns one line per violation, each naming the resource and the rule.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from ml_eval.errors import UserError

# The layer folders under models/ and the name prefixes allowed in each (dbt's style guide).
# `lineage_` is the one addition: models/marts/lineage/ holds the ML lineage graph as a pair
# of tables, `lineage_nodes` and `lineage_edges`, which are neither facts nor dimensions and
# read best under the graph's own name.
LAYERS: dict[str, tuple[str, ...]] = {
    "staging": ("stg_",),
    "intermediate": ("int_",),
    "marts": ("fct_", "dim_", "rpt_", "lineage_"),
}

# Tests that make a primary key on their own (any package's namespace).
COMPOSITE_KEY_TESTS = {"unique_combination_of_columns"}


def _layer(node: dict) -> str:
    """The first folder of the node's path under its model path: staging, intermediate, marts."""
    parts = Path(node["path"]).parts
    return parts[0] if len(parts) > 1 else ""


def _source_name(source: dict) -> str:
    return f"{source['source_name']}.{source['name']}"


def _undocumented(resource: dict) -> bool:
    return not (resource.get("description") or "").strip()


class _Project:
    """The project's own resources in a manifest (installed packages are not checked)."""

    def __init__(self, manifest: dict, catalog: dict | None):
        project = manifest["metadata"]["project_name"]
        own = [node for node in manifest["nodes"].values() if node["package_name"] == project]
        self.models = {node["unique_id"]: node for node in own if node["resource_type"] == "model"}
        self.seeds = {node["unique_id"]: node for node in own if node["resource_type"] == "seed"}
        self.tests = [node for node in own if node["resource_type"] == "test"]
        self.sources = {uid: source for uid, source in manifest["sources"].items() if source["package_name"] == project}
        self.all_sources = manifest["sources"]
        self.macros = [macro for macro in manifest["macros"].values() if macro["package_name"] == project]
        self.exposures = [e for e in manifest.get("exposures", {}).values() if e["package_name"] == project]
        self.catalog = catalog or {}
        self.nodes = manifest["nodes"]

    def present_columns(self, unique_id: str) -> list[str] | None:
        """The relation's columns per the catalog, or None without one (or when not built)."""
        kind = "sources" if unique_id.startswith("source.") else "nodes"
        entry = (self.catalog.get(kind) or {}).get(unique_id)
        return None if entry is None else list(entry["columns"])


def _layer_rules(project: _Project) -> Iterator[str]:
    for node in project.models.values():
        name, layer = node["name"], _layer(node)
        parents = node["depends_on"]["nodes"]
        sources = [_source_name(project.all_sources[p]) for p in parents if p.startswith("source.")]
        models = [p.split(".")[-1] for p in parents if p.startswith("model.")]
        if layer != "staging":
            for source in sources:
                yield f"model {name} reads source {source}: only staging models may read sources"
        if sources and models:
            yield (
                f"model {name} reads source {sources[0]} and model {models[0]}: "
                "no model may read both a source and a model"
            )
        if layer == "staging":
            for model in models:
                yield f"model {name} reads model {model}: staging models read only sources and seeds"


def _naming_rules(project: _Project) -> Iterator[str]:
    for node in project.models.values():
        name, layer, folder = node["name"], _layer(node), str(Path(node["original_file_path"]).parent)
        if layer not in LAYERS:
            yield f"model {name} is in {folder}/: models live in {', '.join(f'{d}/' for d in LAYERS)}"
        elif not name.startswith(LAYERS[layer]):
            yield f"model {name} is in {folder}/: {layer} model names start with {' or '.join(LAYERS[layer])}"


def _primary_key_rules(project: _Project) -> Iterator[str]:
    tested: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for test in project.tests:
        metadata = test.get("test_metadata") or {}
        if test.get("attached_node") and metadata.get("name"):
            tested[test["attached_node"]][metadata["name"]].add(test.get("column_name") or "")
    for uid, node in project.models.items():
        tests = tested[uid]
        enforced = bool((node["config"].get("contract") or {}).get("enforced"))
        constraints = [(None, c) for c in node.get("constraints") or []] + [
            (column, c) for column, spec in node["columns"].items() for c in spec.get("constraints") or []
        ]
        not_null = tests["not_null"] | {column for column, c in constraints if enforced and c["type"] == "not_null"}
        has_key = (
            bool(tests["unique"] & not_null)
            or any(tests[name] for name in COMPOSITE_KEY_TESTS)
            or (enforced and any(c["type"] == "primary_key" for _, c in constraints))
        )
        if not has_key:
            yield (
                f"model {node['name']} has no primary-key test: add unique + not_null on its key, "
                "unique_combination_of_columns, or an enforced primary_key constraint"
            )


def _column_rules(project: _Project, kind: str, label: str, resource: dict, check_declared: bool) -> Iterator[str]:
    """Undocumented columns, declared or (per the catalog) present; declared columns the relation lacks."""
    declared = {name.lower(): spec for name, spec in resource["columns"].items()}
    present = project.present_columns(resource["unique_id"])
    for name, spec in resource["columns"].items():
        if _undocumented(spec):
            yield f"{kind} {label} column {name} has no description"
        if check_declared and present is not None and name.lower() not in {c.lower() for c in present}:
            yield f"{kind} {label} declares column {name}, which the relation does not have"
    for name in present or []:
        if name.lower() not in declared:
            yield f"{kind} {label} column {name} has no description (not declared in YAML)"


def _documentation_rules(project: _Project) -> Iterator[str]:
    for node in project.models.values():
        if _undocumented(node):
            yield f"model {node['name']} has no description"
        yield from _column_rules(project, "model", node["name"], node, check_declared=True)
    for node in project.seeds.values():
        if _undocumented(node):
            yield f"seed {node['name']} has no description"
        yield from _column_rules(project, "seed", node["name"], node, check_declared=True)
    described_sources: set[str] = set()
    for source in project.sources.values():
        if not (source.get("source_description") or "").strip() and source["source_name"] not in described_sources:
            described_sources.add(source["source_name"])
            yield f"source {source['source_name']} has no description"
        if _undocumented(source):
            yield f"source {_source_name(source)} has no description"
        # Source tables vary with the producer's version (MLflow 2.x lacks 3.x's columns), so a
        # declared column may be absent; undeclared ones are still reported.
        yield from _column_rules(project, "source", _source_name(source), source, check_declared=False)
    for macro in project.macros:
        if _undocumented(macro):
            yield f"macro {macro['name']} ({macro['original_file_path']}) has no description"
    for exposure in project.exposures:
        if _undocumented(exposure):
            yield f"exposure {exposure['name']} has no description"


RULES = (_layer_rules, _naming_rules, _primary_key_rules, _documentation_rules)


def check(manifest: dict, catalog: dict | None = None) -> list[str]:
    """Every violation of the rules in the project's manifest (and catalog), one message each."""
    project = _Project(manifest, catalog)
    return [message for rule in RULES for message in rule(project)]


def summary(manifest: dict, catalog: dict | None = None) -> str:
    """What was checked, in one line: `34 models, 21 sources, ... checked`."""
    project = _Project(manifest, catalog)
    columns = sum(
        len(r["columns"]) for r in [*project.models.values(), *project.seeds.values(), *project.sources.values()]
    )
    return (
        f"{len(project.models)} models, {len(project.sources)} sources, {len(project.seeds)} seeds, "
        f"{len(project.macros)} macros, {columns} declared columns{' and the catalog' if catalog else ''} checked"
    )


def _read(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} not found: run `{what}` first") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not JSON: {exc}") from None


def run(manifest_path: Path, catalog_path: Path | None = None) -> int:
    """Check the artifacts, print the violations (exit code 1) or a one-line summary (0).

    A missing or unreadable artifact raises UserError (the CLI prints it, exit code 2).
    """
    manifest = _read(manifest_path, "dbt parse")
    if catalog_path is None and (manifest_path.parent / "catalog.json").exists():
        catalog_path = manifest_path.parent / "catalog.json"
    catalog = _read(catalog_path, "dbt docs generate") if catalog_path else None
    violations = check(manifest, catalog)
    for message in violations:
        print(message)
    if violations:
        print(f"{summary(manifest, catalog)}: {len(violations)} violations", file=sys.stderr)
        return 1
    print(f"{summary(manifest, catalog)}: no violations")
    return 0
