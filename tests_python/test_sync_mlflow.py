"""`ml-eval sync-mlflow --from URI`: MLflow's tables copied from MariaDB and SQLite, exactly.

MLflow 3.17 itself writes real runs (params, tags with quotes and unicode, metrics with NaN,
±inf and doubles that print in 17 digits, a registered model with versions and an alias) into
a fresh MariaDB database (127.0.0.1:3306, user root, no password: the service every machine
here and CI run) and into a SQLite file; the command copies them into a fresh warehouse
database, and every table is compared row by row with the source, read through its own driver
(pymysql, sqlite3), doubles by their bytes. Then: one new run is all a second sync copies;
changed statuses, tags, aliases and deletions come through; a sync killed midway (SIGKILL
after its progress line) leaves the copy as it was; the refusals are one line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest
from psycopg import sql

from conftest import (
    CONFIG,
    LONG_HISTORY,
    drop_database,
    kill_midway_through_sync,
    log_long_history,
    migrated_file_store,
    run_ml_eval,
)
from ml_eval import warehouse as wh

PREFIX = os.environ.get("ML_EVAL_TEST_DATABASE_PREFIX") or "ml_eval_pytest"
# the MariaDB service (.ci/run checks it answers first)
MARIADB = {
    "host": os.environ.get("ML_EVAL_TEST_MARIADB_HOST") or "127.0.0.1",
    "port": int(os.environ.get("ML_EVAL_TEST_MARIADB_PORT") or 3306),
    "user": "root",
}
SCHEMA = CONFIG.mlflow_schema
# the values MLflow stores for what was logged: NaN is 0 with is_nan, ±inf the largest doubles
LOGGED = {"sum": 0.1 + 0.2, "third": 1 / 3, "nan": math.nan, "inf": math.inf, "ninf": -math.inf, "tiny": 5e-324}
PROGRESS = re.compile(r"^sync-mlflow: (\w+): (\d+) rows, \+(\d+) ~(\d+) -(\d+)", re.MULTILINE)
SUMMARY = re.compile(r"(\d+) tables, (\d+) rows read, (\d+) tables changed, \+(\d+) ~(\d+) -(\d+) rows, ([\d.]+) s$")


@dataclass
class Store:
    """An MLflow store in MariaDB or SQLite, and the warehouse database its copy goes to."""

    kind: str
    uri: str
    connect: Callable[[], object]  # a DB-API connection to the source, through its own driver
    quote: str
    warehouse: wh.Warehouse

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.uri, self.uri)

    def source_rows(self, table: str, columns: list[str]) -> list[tuple]:
        conn = self.connect()
        try:
            cursor = conn.cursor()
            names = ", ".join(f"{self.quote}{c}{self.quote}" for c in columns)
            cursor.execute(f"select {names} from {self.quote}{table}{self.quote}")
            return list(cursor.fetchall())
        finally:
            conn.close()


def sync(store: Store, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_ml_eval("sync-mlflow", "--from", store.uri, "--database", store.warehouse.database, *extra, check=check)


def changes(done: subprocess.CompletedProcess) -> dict[str, tuple[int, int, int]]:
    """table -> (+inserted, ~updated, -deleted) from the progress lines, for tables that changed."""
    found = {m[0]: (int(m[2]), int(m[3]), int(m[4])) for m in PROGRESS.findall(done.stderr)}
    return {table: counts for table, counts in found.items() if any(counts)}


def summary(done: subprocess.CompletedProcess) -> tuple[int, ...]:
    match = SUMMARY.search(done.stdout.strip())
    assert match, done.stdout
    return tuple(int(value) for value in match.groups()[:6])


def track(store: Store, experiment: str, names: list[str], *, model: str = "sync-model", history: int = 3) -> list[str]:
    """Runs logged by MLflow 3.17 itself, each registered as a version of `model`; the last is champion."""
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    from ml_eval.producer.tracking import mlflow_quietly, quiet_mlflow

    quiet_mlflow()
    with mlflow_quietly():
        client = store.client()
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        with contextlib.suppress(MlflowException):  # made by an earlier call
            client.create_registered_model(model, description="synced by test_sync_mlflow")
        run_ids = []
        for position, name in enumerate(names):
            run = client.create_run(
                experiment_id,
                run_name=name,
                tags={"model_family": "linear", "note": 'it\'s "quoted"; drop table runs; -- ü α ✓'},
            )
            run_id = run.info.run_id
            now = 1_760_000_000_000 + position
            metrics = [Metric(key, value, now, 0) for key, value in LOGGED.items()]
            metrics += [Metric("accuracy_score", 1 / (3 + position), now, 0)]
            metrics += [Metric("staged_log_loss", 1 / (step + 7), now + step, step) for step in range(1, history + 1)]
            client.log_batch(run_id, metrics=metrics, params=[Param("C", str(0.1 * (position + 1))), Param("i", name)])
            client.set_terminated(run_id)
            version = client.create_model_version(model, source=f"{run.info.artifact_uri}/model", run_id=run_id)
            client.set_model_version_tag(model, version.version, "run_name", name)
            client.set_registered_model_alias(model, "champion", version.version)
            run_ids.append(run_id)
    return run_ids


def copied_tables(database: wh.Warehouse) -> dict[str, tuple[list[str], list[str]]]:
    """The copy's tables: name -> (columns but generated ones, their types)."""
    with database.connect() as conn:
        rows = conn.execute(
            "select c.relname, a.attname, format_type(a.atttypid, a.atttypmod) from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace join pg_attribute a on a.attrelid = c.oid"
            " where n.nspname = %s and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped"
            " and a.attgenerated = '' order by c.relname, a.attnum",
            (SCHEMA,),
        ).fetchall()
    tables: dict[str, tuple[list[str], list[str]]] = {}
    for table, column, type_name in rows:
        tables.setdefault(table, ([], []))
        tables[table][0].append(column)
        tables[table][1].append(type_name)
    return tables


def normal(value, type_name: str):
    """A value as both sides must agree on it: doubles by their 8 bytes, MySQL's 0/1 as booleans."""
    if value is None:
        return None
    if isinstance(value, float):
        return ("double", struct.pack(">d", value))
    if type_name == "boolean":
        return bool(value)
    if isinstance(value, bytes | memoryview) and type_name != "bytea":
        return bytes(value).decode()
    return value


def snapshot(database: wh.Warehouse) -> dict[str, list]:
    """Every row of every table of the copy, normalised and sorted."""
    out = {}
    tables = copied_tables(database)
    with database.connect() as conn:
        for table, (columns, types) in tables.items():
            names = ", ".join(
                f'"{c}"::text' if t.startswith("json") else f'"{c}"' for c, t in zip(columns, types, strict=True)
            )
            rows = conn.execute(f'select {names} from "{SCHEMA}"."{table}"').fetchall()
            out[table] = sorted(
                (tuple(normal(v, t) for v, t in zip(row, types, strict=True)) for row in rows), key=repr
            )
    return out


def assert_copy_is_exact(store: Store) -> dict[str, list]:
    """Every table of the copy equals the source's, row by row and bit for bit."""
    copy = snapshot(store.warehouse)
    tables = copied_tables(store.warehouse)
    assert len(tables) == 65  # MLflow 3.17's tables, alembic_version included
    for table, (columns, types) in tables.items():
        source = sorted(
            (tuple(normal(v, t) for v, t in zip(row, types, strict=True)) for row in store.source_rows(table, columns)),
            key=repr,
        )
        assert copy[table] == source, table
    return copy


def metric_values(store: Store, run_id: str) -> dict[str, tuple[bytes, bool]]:
    with store.warehouse.connect() as conn:
        rows = conn.execute(
            f'select key, value, is_nan from "{SCHEMA}".metrics where run_uuid = %s and step = 0', (run_id,)
        ).fetchall()
    return {key: (struct.pack(">d", value), is_nan) for key, value, is_nan in rows}


# --- the stores -------------------------------------------------------------------------------


def _mariadb_answers() -> None:
    try:
        pymysql.connect(**MARIADB, connect_timeout=5).close()
    except pymysql.Error as exc:
        pytest.fail(f"MariaDB does not answer at {MARIADB['host']}:{MARIADB['port']}: {exc}")


def _fresh_warehouse(name: str) -> wh.Warehouse:
    database = wh.resolve(CONFIG).with_database(f"{PREFIX}_{name}_{os.getpid()}")
    wh.ensure_database(database, fresh=True)
    return database


@pytest.fixture(scope="module")
def mariadb() -> Iterator[Store]:
    _mariadb_answers()
    name = f"{PREFIX}_sync_{os.getpid()}"
    admin = pymysql.connect(**MARIADB)
    admin.cursor().execute(f"drop database if exists `{name}`")
    admin.cursor().execute(f"create database `{name}` character set utf8mb4")
    database = _fresh_warehouse("sync_mariadb")
    store = Store(
        "mariadb",
        f"mysql+pymysql://root@{MARIADB['host']}:{MARIADB['port']}/{name}",
        lambda: pymysql.connect(**MARIADB, database=name, charset="utf8mb4"),
        "`",
        database,
    )
    try:
        yield store
    finally:
        admin.cursor().execute(f"drop database if exists `{name}`")
        admin.close()
        drop_database(database)


@pytest.fixture(scope="module")
def sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path = tmp_path_factory.mktemp("sync_sqlite") / "mlflow.db"
    database = _fresh_warehouse("sync_sqlite")
    store = Store("sqlite", f"sqlite:///{path}", lambda: sqlite3.connect(path), '"', database)
    try:
        yield store
    finally:
        drop_database(database)


@pytest.fixture(scope="module", params=["mariadb", "sqlite"])
def store(request: pytest.FixtureRequest) -> Store:
    """A store with two runs, synced once."""
    store = request.getfixturevalue(request.param)
    track(store, "sync-experiment", ["first", "second"])
    done = sync(store)
    assert "schema created" in done.stdout
    return store


# --- the tests ----------------------------------------------------------------------------------


def test_first_sync_copies_every_row_exactly(store: Store):
    from ml_eval.producer.tracking import ensure_store

    copy = assert_copy_is_exact(store)
    own = _fresh_warehouse(f"sync_317_{store.kind}")  # the tables MLflow 3.17 makes itself in PostgreSQL
    try:
        ensure_store(own, SCHEMA)
        assert ddl(store.warehouse) == ddl(own)
    finally:
        drop_database(own)
    assert len(copy["runs"]) == 2
    assert len(copy["model_versions"]) == 2
    assert copy["alembic_version"] == [("dc11669786a5",)]
    with store.warehouse.connect() as conn:
        run_id = conn.execute(f'select run_uuid from "{SCHEMA}".runs order by start_time limit 1').fetchone()[0]
    # NaN is 0 with is_nan, ±inf the largest double, as MLflow stores them; the rest bit for bit
    assert metric_values(store, run_id) == {
        "sum": (struct.pack(">d", 0.30000000000000004), False),
        "third": (struct.pack(">d", 1 / 3), False),
        "nan": (struct.pack(">d", 0.0), True),
        "inf": (struct.pack(">d", 1.7976931348623157e308), False),
        "ninf": (struct.pack(">d", -1.7976931348623157e308), False),
        "tiny": (struct.pack(">d", 5e-324), False),
        "accuracy_score": (struct.pack(">d", 1 / 3), False),
    }


def test_second_sync_copies_only_the_new_run(store: Store):
    sync(store)  # up to date
    again = sync(store)
    assert changes(again) == {}
    assert summary(again)[3:] == (0, 0, 0)

    (run_id,) = track(store, "sync-experiment", ["third"])
    done = sync(store)
    copy = assert_copy_is_exact(store)
    run_column = {"runs": "run_uuid", "params": "run_uuid", "tags": "run_uuid", "metrics": "run_uuid",
                  "latest_metrics": "run_uuid", "model_versions": "run_id"}  # fmt: skip
    of_run = {
        table: sum(1 for row in store.source_rows(table, [column]) if row[0] == run_id)
        for table, column in run_column.items()
    }
    counted = changes(done)
    new_version = str(len(copy["model_versions"]))
    # the run's rows, its model version and that version's tag; the alias moves to it (an update)
    assert counted == {
        **{table: (n, 0, 0) for table, n in of_run.items()},
        "model_version_tags": (1, 0, 0),
        "registered_model_aliases": (0, 1, 0),
        "registered_models": (0, 1, 0),  # last_updated_time
    }, (counted, new_version)
    inserted = sum(of_run.values()) + 1
    assert summary(done)[3:] == (inserted, 2, 0)


def test_changes_and_deletions_are_synced(store: Store):
    sync(store)
    client = store.client()
    runs = client.search_runs([client.get_experiment_by_name("sync-experiment").experiment_id])
    first, second = runs[-1].info.run_id, runs[-2].info.run_id
    client.set_tag(first, "reviewed", "yes")
    client.delete_tag(second, "note")
    client.set_terminated(second, status="FAILED")
    client.delete_run(first)  # soft: lifecycle_stage
    client.set_registered_model_alias("sync-model", "champion", "1")
    client.delete_model_version("sync-model", "2")
    done = sync(store)
    assert_copy_is_exact(store)
    counted = changes(done)
    assert counted["tags"] == (1, 0, 1)  # a deleted tag is a deleted row
    assert counted["runs"] == (0, 2, 0)
    assert counted["model_versions"] == (0, 1, 0)  # MLflow 3.17 marks a deleted version DELETED_INTERNAL
    assert counted["registered_model_aliases"] == (0, 1, 0)


def test_an_experiment_removed_and_created_again_under_its_name_is_synced(sqlite: Store):
    """`mlflow gc` removes a deleted experiment for good, and a new one takes its name: the
    copy deletes the old row before it inserts the new one (experiments.name is unique)."""
    client = sqlite.client()
    old = client.create_experiment("gone-and-back")
    client.create_experiment("stays")  # SQLite would give the next experiment old's id again
    sync(sqlite)
    client.delete_experiment(old)
    subprocess.run(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "gc",
            "--backend-store-uri",
            sqlite.uri,
            "--tracking-uri",
            sqlite.uri,
            "--experiment-ids",
            old,
        ],
        check=True,
        capture_output=True,
    )
    new = client.create_experiment("gone-and-back")
    assert new != old
    done = sync(sqlite)
    assert_copy_is_exact(sqlite)
    inserted, _, deleted = changes(done)["experiments"]
    assert (inserted, deleted) == (1, 1)


def test_killed_sync_leaves_the_copy_unchanged(store: Store):
    """SIGKILL once the progress line of the big table's first 100,000 rows is out: nothing of
    the sync is kept; the next one copies everything."""
    sync(store)
    before = snapshot(store.warehouse)
    (run_id,) = track(store, "sync-experiment", ["big"], history=0)
    log_long_history(store.client(), run_id)
    kill_midway_through_sync("sync-mlflow", "--from", store.uri, "--database", store.warehouse.database)
    assert snapshot(store.warehouse) == before

    done = sync(store)
    assert changes(done)["metrics"][0] == LONG_HISTORY + len(LOGGED) + 1
    assert_copy_is_exact(store)


# --- refusals: one line, the copy unchanged --------------------------------------------------------


def test_untested_revision_is_refused_by_name(sqlite: Store, tmp_path: Path):
    track(sqlite, "sync-experiment", ["for-revision"])
    path = tmp_path / "other.db"
    with sqlite3.connect(sqlite.uri.removeprefix("sqlite:///")) as source, sqlite3.connect(path) as target:
        source.backup(target)
    with sqlite3.connect(path) as conn:
        conn.execute("update alembic_version set version_num = 'ffffffffffff'")
    done = run_ml_eval(
        "sync-mlflow", "--from", f"sqlite:///{path}", "--database", sqlite.warehouse.database, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"ml-eval: error: MLflow schema revision ffffffffffff of sqlite:///{path} is not one this project is tested"
        " against (tested: 0584bdc529eb (MLflow 2.22), dc11669786a5 (MLflow 3.17)): sync-mlflow refuses it"
    ]


def test_password_is_never_printed(mariadb: Store, tmp_path: Path):
    secret = "s3cret-Pw_42"
    server = f"{MARIADB['host']}:{MARIADB['port']}"
    url = f"mysql+pymysql://root:{secret}@{server}/whatever"
    done = run_ml_eval("sync-mlflow", "--from", url, "--database", mariadb.warehouse.database, check=False)
    assert done.returncode == 2
    assert secret not in done.stdout + done.stderr
    assert f"mysql+pymysql://root:***@{server}/whatever" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1

    file = tmp_path / "password"
    file.write_text(secret + "\n")
    plain = f"mysql+pymysql://root@{server}/whatever"
    for extra, env in ((["--password-file", str(file)], {}), ([], {"ML_EVAL_MLFLOW_PASSWORD": secret})):
        done = run_ml_eval(
            "sync-mlflow", "--from", plain, "--database", mariadb.warehouse.database, *extra, env=env, check=False
        )
        assert done.returncode == 2
        assert secret not in done.stdout + done.stderr
        assert "Access denied" in done.stderr and "(using password: YES)" in done.stderr


def test_an_unreadable_store_creates_no_warehouse_database(tmp_path: Path):
    """The source is read before the warehouse database is created: a wrong URI leaves nothing behind."""
    fresh = wh.resolve(CONFIG).with_database(f"ml_eval_sync_never_{os.getpid()}")
    server = f"{MARIADB['host']}:{MARIADB['port']}"
    for url in (f"mysql+pymysql://root@{server}/ml_eval_no_such_store", f"sqlite:///{tmp_path / 'empty.db'}"):
        done = run_ml_eval("sync-mlflow", "--from", url, "--database", fresh.database, check=False)
        assert done.returncode == 2, done.stdout + done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        with fresh.connect("postgres", autocommit=True) as conn:
            exists = conn.execute("select exists (select from pg_database where datname = %s)", (fresh.database,))
            assert not exists.fetchone()[0], f"{url}: sync-mlflow created {fresh.database}"


def test_a_store_mlflow_writes_itself_is_not_overwritten(sqlite: Store):
    """The warehouse's MLflow schema that `ml-eval train` writes is MLflow's own, not a copy."""
    from ml_eval.producer.tracking import ensure_store

    database = _fresh_warehouse("sync_own")
    try:
        ensure_store(database, SCHEMA)
        done = run_ml_eval("sync-mlflow", "--from", sqlite.uri, "--database", database.database, check=False)
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            f"ml-eval: error: schema {SCHEMA} of database {database.database} holds an MLflow store sync-mlflow did"
            " not copy (MLflow writes there itself, e.g. `ml-eval train`): sync into another schema"
            " (ML_EVAL_MLFLOW_SCHEMA) or database"
        ]
    finally:
        drop_database(database)


def test_gateway_secrets_are_not_copied(tmp_path: Path):
    """MLflow's AI-gateway secrets (encrypted under MLflow's default passphrase here, as in any
    store whose server never set MLFLOW_CRYPTO_KEK_PASSPHRASE) stay out of the copy: the table is
    empty there, the model definition that names one is copied with a null secret_id, a second
    sync changes nothing, and a copy that held them (made before they were withheld) is emptied."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path = tmp_path / "mlflow.db"
    store = Store("sqlite", f"sqlite:///{path}", lambda: sqlite3.connect(path), '"', _fresh_warehouse("sync_secrets"))
    try:
        track(store, "secrets-experiment", ["a-run"])
        mlflow_store = SqlAlchemyStore(store.uri, (tmp_path / "artifacts").as_uri())
        secret = mlflow_store.create_gateway_secret("openai-key", {"api_key": "sk-not-a-real-key-0123456789"})
        definition = mlflow_store.create_gateway_model_definition("gpt", secret.secret_id, "openai", "gpt-4o")
        mlflow_store.engine.dispose()
        source = sqlite3.connect(path)
        source.row_factory = sqlite3.Row
        secret_row = dict(source.execute("select * from secrets").fetchone())
        source.close()
        (masked,) = json.loads(secret_row["masked_value"]).values()  # e.g. sk-...6789
        assert secret_row["secret_name"] == "openai-key" and masked.endswith("6789") and len(masked) >= 8

        first = sync(store)
        assert "schema created" in first.stdout
        with store.warehouse.connect() as conn:
            assert conn.execute(f'select count(*) from "{SCHEMA}".secrets').fetchone() == (0,)
            copied = conn.execute(
                f'select name, secret_id, provider, model_name from "{SCHEMA}".model_definitions'
                " where model_definition_id = %s",
                (definition.model_definition_id,),
            ).fetchone()
            assert copied == ("gpt", None, "openai", "gpt-4o")
            # nothing of the secret anywhere in the copy: its name, its masked value, its bytes
            columns = conn.execute(
                "select table_name, column_name from information_schema.columns where table_schema = %s"
                " and data_type in ('text', 'character varying', 'bytea', 'json', 'jsonb')",
                (SCHEMA,),
            ).fetchall()
            found = [
                (table, column)
                for table, column in columns
                for needle in ("openai-key", masked, bytes(secret_row["encrypted_value"]).hex()[:32])
                if conn.execute(
                    sql.SQL("select exists (select from {} where position(%s in cast({} as text)) > 0)").format(
                        sql.Identifier(SCHEMA, table), sql.Identifier(column)
                    ),
                    (needle,),
                ).fetchone()[0]
            ]
            assert found == [], found
        assert changes(sync(store)) == {}

        # a copy made before secrets were withheld: its rows go at the next sync
        with store.warehouse.connect() as conn:
            conn.execute(
                sql.SQL("insert into {} ({}) values ({})").format(
                    sql.Identifier(SCHEMA, "secrets"),
                    sql.SQL(", ").join(map(sql.Identifier, secret_row)),
                    sql.SQL(", ").join(sql.Placeholder() * len(secret_row)),
                ),
                list(secret_row.values()),
            )
            conn.execute(
                f'update "{SCHEMA}".model_definitions set secret_id = %s where model_definition_id = %s',
                (secret.secret_id, definition.model_definition_id),
            )
        again = sync(store)
        assert "secrets: 1 rows deleted from the copy (MLflow's secrets are not copied)" in again.stderr
        with store.warehouse.connect() as conn:
            assert conn.execute(f'select count(*) from "{SCHEMA}".secrets').fetchone() == (0,)
            assert conn.execute(
                f'select secret_id from "{SCHEMA}".model_definitions where model_definition_id = %s',
                (definition.model_definition_id,),
            ).fetchone() == (None,)
    finally:
        drop_database(store.warehouse)


def test_file_store_ids_widen_the_copy_unless_a_view_depends_on_them(tmp_path: Path):
    """A file store migrated by MLflow's own migrate-filestore keeps its experiment ids, too big
    for MLflow's PostgreSQL integer: the copy's experiment id columns become bigint, the ids
    unchanged and the copy exact. Where a view over the copy depends on such a column (the
    store replaced by a migrated one after a first sync) it is refused in one line, naming the
    view, and the copy is left as it was."""
    path = tmp_path / "mlflow.db"
    store = Store("sqlite", f"sqlite:///{path}", lambda: sqlite3.connect(path), '"', _fresh_warehouse("sync_files"))
    try:
        track(store, "small-ids", ["before-files"])
        sync(store)
        before = snapshot(store.warehouse)
        with store.warehouse.connect() as conn:
            conn.execute(f'create view public.consumer_runs as select experiment_id from "{SCHEMA}".runs')

        files = lambda uri: track(Store("files", uri, lambda: None, '"', store.warehouse), "from-files", ["filed"])  # noqa: E731
        migrated = migrated_file_store(tmp_path, files)
        path.write_bytes(migrated.read_bytes())  # the team migrated its file store into MLflow's file
        with sqlite3.connect(path) as source:
            (experiment_id,) = source.execute(
                "select experiment_id from experiments where name = 'from-files'"
            ).fetchone()
        assert experiment_id >= 2**31, experiment_id

        refused = sync(store, check=False)
        assert refused.returncode == 2, refused.stdout
        lines = [line for line in refused.stderr.splitlines() if not line.startswith("sync-mlflow: ")]
        assert len(lines) == 1, refused.stderr
        assert f"experiments.experiment_id holds {experiment_id} (a file-store experiment id)" in lines[0]
        assert "public.consumer_runs" in lines[0]
        assert snapshot(store.warehouse) == before

        with store.warehouse.connect() as conn:
            conn.execute("drop view public.consumer_runs")
        widened = sync(store)
        assert "experiment id columns become bigint" in widened.stderr
        copy = assert_copy_is_exact(store)
        assert (experiment_id,) in {row[:1] for row in copy["experiments"]}
        tables = copied_tables(store.warehouse)
        id_columns = {
            (table, column): type_name
            for table, (columns, types) in tables.items()
            for column, type_name in zip(columns, types, strict=True)
            if column == "experiment_id"
        }
        assert len(id_columns) >= 5 and set(id_columns.values()) == {"bigint"}, id_columns
        assert summary(sync(store))[2:] == (0, 0, 0, 0)  # the next sync finds nothing to change
    finally:
        drop_database(store.warehouse)


# --- MLflow 2.22's schema era -------------------------------------------------------------------

# Runs in MLflow 2.22's own environment (tests_python/support/mlflow_legacy.py): a SQLite store
# with one run, and MLflow 2.22's own tables in PostgreSQL, to compare the copy's DDL with.
LEGACY_SYNC_SCRIPT = r"""
import json, logging, math, sys, warnings
warnings.simplefilter("ignore")
logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)
import mlflow, sqlalchemy
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.store.db.utils import _initialize_tables
job = json.load(sys.stdin)
client = MlflowClient(job["sqlite"], job["sqlite"])
experiment_id = client.create_experiment("legacy")
run = client.create_run(experiment_id, run_name="legacy-run", tags={"note": "it's ü"})
client.log_batch(run.info.run_id, params=[Param("C", "0.1")], metrics=[
    Metric("sum", 0.1 + 0.2, 1, 0), Metric("nan", math.nan, 1, 0), Metric("inf", math.inf, 1, 0)])
client.set_terminated(run.info.run_id)
client.create_registered_model("legacy-model")
version = client.create_model_version("legacy-model", f"{run.info.artifact_uri}/model", run.info.run_id)
client.set_registered_model_alias("legacy-model", "champion", version.version)
_initialize_tables(sqlalchemy.create_engine(job["postgresql"]))
print(json.dumps({"mlflow_version": mlflow.__version__, "run_id": run.info.run_id}))
"""


def ddl(database: wh.Warehouse) -> dict[str, list]:
    """The MLflow schema's columns, constraints and indexes, as PostgreSQL prints them."""
    with database.connect() as conn:
        columns = conn.execute(
            "select table_name, column_name, data_type, character_maximum_length, is_nullable, column_default"
            " from information_schema.columns where table_schema = %s order by 1, 2",
            (SCHEMA,),
        ).fetchall()
        constraints = conn.execute(
            "select c.relname, k.conname, pg_get_constraintdef(k.oid) from pg_constraint k"
            " join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = %s order by 1, 2",
            (SCHEMA,),
        ).fetchall()
        indexes = conn.execute(
            "select tablename, indexdef from pg_indexes where schemaname = %s order by 1, 2", (SCHEMA,)
        ).fetchall()
    return {"columns": columns, "constraints": constraints, "indexes": indexes}


def test_mlflow_222_store_is_copied_with_mlflow_222_s_ddl(tmp_path: Path):
    """A SQLite store MLflow 2.22 wrote: the copy gets 2.22's revision and exactly the tables
    MLflow 2.22 itself makes in PostgreSQL (made here through 3.17's migrations)."""
    import json

    from support.mlflow_legacy import ALEMBIC_REVISION, tracking_uri, uv_command

    own = _fresh_warehouse("sync_222_own")
    copy = _fresh_warehouse("sync_222_copy")
    path = tmp_path / "mlflow222.db"
    try:
        with own.connect() as conn:
            conn.execute(f'create schema "{SCHEMA}"')
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
        env.update({"DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore"})
        job = {"sqlite": f"sqlite:///{path}", "postgresql": tracking_uri(own, SCHEMA)}
        done = subprocess.run(
            [*uv_command(), "python", "-c", LEGACY_SYNC_SCRIPT],
            input=json.dumps(job), capture_output=True, text=True, env=env, timeout=900, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["mlflow_version"].startswith("2.22.")

        store = Store("sqlite", f"sqlite:///{path}", lambda: sqlite3.connect(path), '"', copy)
        synced = sync(store)
        assert f"(revision {ALEMBIC_REVISION}, MLflow 2.22)" in synced.stdout
        assert ddl(copy) == ddl(own)
        tables = copied_tables(copy)
        assert len(tables) == 19  # design document 000's tables
        snap = snapshot(copy)
        for table, (columns, types) in tables.items():
            rows = sorted(
                (tuple(normal(v, t) for v, t in zip(r, types, strict=True)) for r in store.source_rows(table, columns)),
                key=repr,
            )
            assert snap[table] == rows, table
        assert metric_values(store, result["run_id"])["sum"] == (struct.pack(">d", 0.30000000000000004), False)
    finally:
        drop_database(own)
        drop_database(copy)


# --- a PostgreSQL MLflow in its own database ----------------------------------------------------


def test_postgresql_store_in_its_own_database_is_copied_exactly(tmp_path: Path):
    """MLflow 3.17 on PostgreSQL in a database of its own (issue 16, item 3: the deployment the
    README recommends), its tables in schema mlflow (owned by MLflow's own role) through
    MLflow's search_path option; synced into the warehouse's database, every row equal to the
    source's, then synced again by a reader holding exactly the README's grants."""
    import psycopg

    source = _fresh_warehouse("sync_pg_source")
    target = _fresh_warehouse("sync_pg_copy")
    read_only_copy = None
    owner, reader = f"{PREFIX}_sync_owner_{os.getpid()}", f"{PREFIX}_sync_reader_{os.getpid()}"

    def run(conn, *statements: str) -> None:
        for statement in statements:
            conn.execute(
                sql.SQL(statement).format(
                    owner=sql.Identifier(owner), reader=sql.Identifier(reader), database=sql.Identifier(source.database)
                )
            )

    try:
        with source.connect(autocommit=True) as conn:
            run(
                conn,
                "drop role if exists {owner}",
                "drop role if exists {reader}",
                "create role {owner} login",
                "create role {reader} login",
                "create schema mlflow authorization {owner}",
                # no one connects but by grant: CONNECT is PUBLIC's by default
                "revoke connect on database {database} from public",
                "grant connect on database {database} to {owner}",
            )
        as_owner = dataclasses.replace(source, user=owner)

        def connect():  # the source's own driver, its tables unqualified as MLflow names them
            return psycopg.connect(psycopg.conninfo.make_conninfo(source.conninfo(), options="-csearch_path=mlflow"))

        store = Store("postgresql", as_owner.sqlalchemy_url("mlflow"), connect, '"', target)
        (run_id,) = track(store, "pg-experiment", ["in-its-own-database"])
        done = sync(store)
        assert "schema created" in done.stdout
        assert "postgresql+psycopg://" in done.stdout and "(revision dc11669786a5, MLflow 3.17)" in done.stdout
        copy = assert_copy_is_exact(store)
        assert [row for row in copy["runs"] if run_id in row]
        assert metric_values(store, run_id)["sum"] == (struct.pack(">d", 0.30000000000000004), False)
        assert changes(sync(store)) == {}

        # the sync's reader with exactly the README's privileges: a fresh copy equal to the source
        as_reader = dataclasses.replace(source, user=reader)
        read_only_copy = _fresh_warehouse("sync_pg_reader")
        reader_store = Store("postgresql", as_reader.sqlalchemy_url("mlflow"), connect, '"', read_only_copy)
        refused = sync(reader_store, check=False)  # no grant yet: not even a connection
        assert refused.returncode == 2 and "permission denied for database" in refused.stderr, refused.stderr
        with source.connect(autocommit=True) as conn:
            run(
                conn,
                "grant connect on database {database} to {reader}",
                "grant usage on schema mlflow to {reader}",
                "grant select on all tables in schema mlflow to {reader}",
                "alter default privileges for role {owner} in schema mlflow grant select on tables to {reader}",
            )
        done = sync(reader_store)
        assert "schema created" in done.stdout and f"postgresql+psycopg://{reader}@" in done.stdout
        assert assert_copy_is_exact(reader_store) == copy
        # it can write nothing there; a table MLflow's role adds later (a new release) is readable
        with as_reader.connect() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("delete from mlflow.runs")
        with as_owner.connect() as conn:
            conn.execute("create table mlflow.a_later_release (id integer)")
        with as_reader.connect() as conn:
            assert conn.execute("select count(*) from mlflow.a_later_release").fetchone() == (0,)
    finally:
        drop_database(source)
        drop_database(target)
        if read_only_copy is not None:
            drop_database(read_only_copy)
        with target.connect("postgres", autocommit=True) as conn:
            run(conn, "drop role if exists {reader}", "drop role if exists {owner}")
