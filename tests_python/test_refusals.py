"""One line for every refusal, and sources must exist (issue 14, items 3 and 5).

Each case runs the real command line against the real PostgreSQL and asserts the exact
one-line message (exit code 2), that nothing was created (no database, schema or table) and
that the published marts are unchanged. Only one case builds: two builds at once.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
from psycopg import sql

from conftest import ML_EVAL, PROJECT_DIR, clone_database, drop_database, run_ml_eval
from ml_eval import preflight
from ml_eval import warehouse as wh

TESTED = "tested: 0584bdc529eb (MLflow 2.22), dc11669786a5 (MLflow 3.17)"
ODD_NAMES = ["ml\"eval'x", "ml eval; drop"]


def published_checksums(database: wh.Warehouse, schema: str = "published") -> dict[str, str | None]:
    """md5 of the rows of every table and view in `schema`."""
    with database.connect() as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "select c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
                " where n.nspname = %s and c.relkind in ('r', 'v', 'm') order by 1",
                (schema,),
            )
        ]
        return {
            table: conn.execute(
                sql.SQL("select md5(string_agg(t::text, ',' order by t::text)) from {} as t").format(
                    sql.Identifier(schema, table)
                )
            ).fetchone()[0]
            for table in tables
        }


def relations(database: wh.Warehouse) -> set[tuple[str, str]]:
    """Every schema (as (schema, "")) and every table, view and sequence of the database."""
    with database.connect() as conn:
        schemas = {(row[0], "") for row in conn.execute("select nspname from pg_namespace")}
        tables = conn.execute(
            "select n.nspname, c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
            " where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')"
        ).fetchall()
    return schemas | {tuple(row) for row in tables}


def database_exists(database: wh.Warehouse, name: str) -> bool:
    with database.connect("postgres") as conn:
        return conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone() is not None


def refused(done: subprocess.CompletedProcess) -> str:
    """The one line of a refusal (exit code 2, nothing else on stderr)."""
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def stale(built: wh.Warehouse):
    """A copy of the built database whose MLflow store claims a revision nobody tested."""
    copy = clone_database(built, built.database + "_stale")
    with copy.connect() as conn:
        conn.execute("update mlflow.alembic_version set version_num = 'ffffffffffff'")
    yield copy
    drop_database(copy)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "ML_EVAL_DATASET_SCHEMA",
            "typo",
            "the Dataset Database tables typo.datasets, typo.samples, typo.targets, typo.classes, typo.run_datasets,"
            " typo.predictions, typo.prediction_scores, typo.run_versions, typo.dataset_versions are missing in"
            " database {db} (schema typo does not exist):"
            " run `ml-eval train`, `ml-eval demo` or `ml-eval load-dataset` to create them, or set"
            " ML_EVAL_DATASET_SCHEMA to the schema they are in",
        ),
        (
            "ML_EVAL_MLFLOW_SCHEMA",
            "nonexistent",
            "MLflow's tables are not in schema nonexistent of database {db} (the schema does not exist):"
            " run `ml-eval train` (or `ml-eval demo`) to create them, `ml-eval sync-mlflow --from URI` to copy them,"
            " or set ML_EVAL_MLFLOW_SCHEMA to the"
            " schema MLflow uses",
        ),
    ],
    ids=["dataset-schema-typo", "mlflow-schema-nonexistent"],
)
def test_build_refuses_missing_sources_and_creates_nothing(built: wh.Warehouse, variable, value, message):
    before, published = relations(built), published_checksums(built)
    line = refused(run_ml_eval("build", "--no-docs", env={**built.env(), variable: value}, check=False))
    assert line == "ml-eval: error: " + message.format(db=built.database)
    assert relations(built) == before
    assert published_checksums(built) == published


def test_build_of_a_missing_database_creates_none(built: wh.Warehouse):
    name = built.database + "_typo"
    line = refused(run_ml_eval("build", "--database", name, env=built.env(), check=False))
    assert line == (
        f"ml-eval: error: database {name} does not exist at {built.host}:{built.port}:"
        f" run `ml-eval demo --database {name}` to create and fill it, or set PGDATABASE (or --database)"
        " to the one that holds MLflow's tables"
    )
    assert not database_exists(built, name)


@pytest.mark.parametrize(
    ("command", "refusal"),
    [
        (["build", "--warn-error", "--no-docs"], "--warn-error refuses to build on it"),
        (
            ["train"],
            "`ml-eval train` writes to it through MLflow 3.17, which would migrate it or fail, so it refuses"
            " (set ML_EVAL_MLFLOW_SCHEMA to a store of a tested revision)",
        ),
    ],
    ids=["build", "train"],
)
def test_an_untested_mlflow_revision_is_one_line(stale: wh.Warehouse, command, refusal):
    before, published = relations(stale), published_checksums(stale)
    line = refused(run_ml_eval(*command, env=stale.env(), check=False))
    assert line == (
        f"ml-eval: error: MLflow schema revision ffffffffffff in mlflow.alembic_version of database {stale.database}"
        f" is not one this project is tested against ({TESTED}): {refusal}"
    )
    assert relations(stale) == before
    assert published_checksums(stale) == published
    with stale.connect() as conn:  # MLflow did not migrate it either
        assert conn.execute("select version_num from mlflow.alembic_version").fetchall() == [("ffffffffffff",)]


@pytest.mark.parametrize("name", ODD_NAMES)
@pytest.mark.parametrize("command", ["build", "train", "env"])
def test_an_odd_database_name_is_refused_before_anything_is_created(built: wh.Warehouse, command, name):
    expected = (
        f"ml-eval: error: database name {name!r} (from PGDATABASE) is refused before anything is created:"
        " use at most 63 bytes of letters, digits, _, $ and - ($ and - not first)"
    )
    assert refused(run_ml_eval(command, env={**built.env(), "PGDATABASE": name}, check=False)) == expected
    flagged = run_ml_eval(command, "--database", name, env=built.env(), check=False)
    assert refused(flagged) == expected.replace("(from PGDATABASE)", "(from --database)")
    assert not database_exists(built, name)


def test_a_second_build_while_one_runs_is_one_line_and_the_first_succeeds(built: wh.Warehouse):
    copy = clone_database(built, built.database + "_twice")
    published = published_checksums(copy)
    first = subprocess.Popen(
        [*ML_EVAL, "build", "--no-docs"],
        cwd=PROJECT_DIR,
        env={**os.environ, **copy.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with copy.connect("postgres", autocommit=True) as conn:  # until the first holds the lock
            deadline = time.monotonic() + 120
            while first.poll() is None and time.monotonic() < deadline:
                held = conn.execute(
                    "select count(*) from pg_locks as l join pg_database as d on d.oid = l.database"
                    " where l.locktype = 'advisory' and l.granted and d.datname = %s",
                    (copy.database,),
                ).fetchone()[0]
                if held:
                    break
                time.sleep(0.05)
        assert first.poll() is None, first.communicate()
        line = refused(run_ml_eval("build", "--no-docs", env=copy.env(), check=False))
        assert re.fullmatch(
            rf"ml-eval: error: ml-eval build \(pid {first.pid}\) \(since \d\d:\d\d:\d\d UTC\) is running on"
            rf" database {copy.database}: one build, demo, train, load or sync at a time per database; wait for it to"
            r" finish, then run this again",
            line,
        ), line
        out, err = first.communicate(timeout=600)
        assert first.returncode == 0, (out[-3000:], err[-3000:])
        # the same input, published again; but rpt_quality_gates, which measures the newest
        # run's age at build time (the run_freshness gate)
        again = published_checksums(copy)
        assert {k: v for k, v in again.items() if k != "rpt_quality_gates"} == {
            k: v for k, v in published.items() if k != "rpt_quality_gates"
        }
        assert set(again) == set(published)
        # and once it is done, the lock is free
        with preflight.exclusive(copy, "test"):
            pass
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        drop_database(copy)


def test_the_old_seed_layout_in_the_dataset_schema_is_refused_with_one_line(warehouse: wh.Warehouse):
    """A warehouse built before the Dataset Database held the Wine seeds in schema `dataset`:
    the producer names the old tables to drop instead of failing on a foreign key."""
    from ml_eval import datasets
    from ml_eval.errors import UserError

    old = warehouse.with_database(f"{warehouse.database}_oldseeds")
    wh.ensure_database(old, fresh=True)
    try:
        with old.connect() as conn:
            conn.execute("create schema old_dataset")
            conn.execute(
                "create table old_dataset.samples (sample_id integer, dataset_id integer, sample_index integer)"
            )
            conn.commit()
            with pytest.raises(UserError) as refused:
                datasets.ensure_tables(conn, "old_dataset")
            conn.rollback()
            tables = conn.execute(
                "select count(*) from pg_catalog.pg_tables where schemaname = 'old_dataset'"
            ).fetchone()[0]
        message = str(refused.value)
        assert "\n" not in message
        assert message.startswith("table old_dataset.samples has the Wine seeds' old layout (no column sample_key)")
        assert "drop the old seed tables old_dataset.targets, old_dataset.samples, old_dataset.datasets" in message
        assert tables == 1  # nothing created beside it
    finally:
        drop_database(old)
