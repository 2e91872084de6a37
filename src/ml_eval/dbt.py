"""Running dbt in-process through its Python API, with failures summarised in one line."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import yaml

from ml_eval.config import Config
from ml_eval.errors import UserError
from ml_eval.warehouse import Warehouse

FAILED = {"error", "fail", "runtime error"}


HEADERS = ("Compilation Error", "Database Error", "Runtime Error", "Parsing Error")


def _first_line(message: str) -> str:
    """The first line that says something, skipping dbt's "Compilation Error in ..." headers."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    for line in lines:
        if not line.startswith(HEADERS):
            return line
    return lines[0] if lines else ""


def _describe(result) -> str:
    """`samples.sample_index: unique (1 failing row)` for a test, `seed samples: <error>` otherwise."""
    node = getattr(result, "node", None)
    status = str(result.status)
    if node is None:  # a run-operation's result carries no node
        return _first_line(result.message or "") or status
    detail = _first_line(result.message or "") or status
    if node.resource_type == "test":
        attached = getattr(node, "attached_node", None) or ""
        sources = getattr(node, "sources", None) or []
        kwargs = getattr(getattr(node, "test_metadata", None), "kwargs", None) or {}
        tested = re.search(r"source\('[^']*', '([^']+)'\)", str(kwargs.get("model", "")))
        refs = getattr(node, "refs", None) or []
        table = (  # a source test's `sources` lists a relationship's `to` table first
            attached.split(".")[-1]
            if attached
            else tested.group(1)
            if tested
            else sources[0][-1]
            if sources
            else refs[0].name
            if refs  # a singular test on models names the first it reads
            else node.name
        )
        column = getattr(node, "column_name", None)
        where = f"{table}.{column}" if column else table
        test_name = getattr(getattr(node, "test_metadata", None), "name", None) or node.name
        if status == "fail":
            return f"{where}: {test_name} ({result.failures} failing rows)"
        return f"{where}: {test_name}: {detail}"
    return f"{node.resource_type} {node.name}: {detail}"


def _gate_lines(result, warehouse: Warehouse) -> list[str]:
    """A failing quality gate's own lines (rpt_quality_gates.message of its failing rows, which
    store_failures kept), each naming the gate and the model; [] for any other result."""
    node = getattr(result, "node", None)
    relation = getattr(node, "relation_name", None)
    if node is None or "quality_gate" not in (getattr(node, "tags", None) or []) or not relation:
        return []
    try:
        with warehouse.connect() as conn:
            return [row[0] for row in conn.execute(f"select message from {relation} order by message")]
    except Exception:  # the stored rows are a courtesy: the test's own line still says what failed
        return []


def _given_vars(args: list[str]) -> tuple[list[str], dict]:
    """`args` without their `--vars`, and the vars it gave (YAML, as dbt reads it)."""
    rest, given = [], {}
    words = iter(args)
    for word in words:
        if word == "--vars" or word.startswith("--vars="):
            text = word.partition("=")[2] if "=" in word else next(words, "")
            try:
                value = yaml.safe_load(text) if text.strip() else {}
            except yaml.YAMLError as exc:
                raise UserError(f"--vars is not valid YAML: {str(exc).splitlines()[0]}") from None
            if not isinstance(value, dict):
                raise UserError(f"--vars must be a mapping of var names to values, not {text!r}")
            given.update(value)
        else:
            rest.append(word)
    return rest, given


def dbt_arguments(args: list[str], config: Config) -> list[str]:
    """`args` with the project, its profiles and the vars the configuration resolved. Vars the
    caller gives with `--vars` are kept, merged under the resolved ones (dbt reads one --vars
    only: a second would drop the first)."""
    if args and args[0] in ("deps", "clean", "debug", "init"):  # commands that take no --vars
        extra = []
    else:
        args, given = _given_vars(args)
        extra = ["--vars", json.dumps({**given, **config.dbt_vars()})]
    directory = str(config.project_dir)
    return [*args, *extra, "--project-dir", directory, "--profiles-dir", directory]


def run_dbt(
    args: list[str], warehouse: Warehouse, config: Config | None = None, *, project_dir: Path | None = None
) -> None:
    """Invoke `dbt <args>` against the warehouse; raise UserError naming what failed.

    `config` is the command's resolved configuration; without one it is resolved from the
    environment, for `project_dir` (a copy of the project, in tests) or the current directory."""
    from dbt.cli.main import dbtRunner  # slow import, only when dbt is needed

    if config is None:
        config = Config.resolve(project_dir=project_dir, database=warehouse.database)
    elif project_dir is not None:
        raise TypeError("run_dbt takes a config or a project_dir, not both")
    os.environ.update(warehouse.env())
    os.environ.setdefault("DO_NOT_TRACK", "1")
    full = dbt_arguments(args, config)
    caught: list[str] = []  # a run-operation's error is only in its log event, not its result

    def catch(event) -> None:
        if event.info.name in ("RunningOperationCaughtError", "RunningOperationUncaughtError"):
            caught.append(event.data.exc)

    outcome = dbtRunner(callbacks=[catch]).invoke(full)
    if outcome.success:
        return
    if caught:
        raise UserError(f"dbt {args[0]} failed: {_first_line(caught[0])}")
    if outcome.exception is not None:
        raise UserError(f"dbt {args[0]} failed: {_first_line(str(outcome.exception)) or repr(outcome.exception)}")
    failures = [
        line
        for r in getattr(outcome.result, "results", []) or []
        if str(r.status) in FAILED
        for line in (_gate_lines(r, warehouse) or [_describe(r)])
    ]
    shown = "; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
    raise UserError(f"dbt {args[0]} failed: {shown or 'see the log above'}")
