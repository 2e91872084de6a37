"""What a command checks before it touches anything, each refusal one line (`UserError`).

- Only `ml-eval train` and `ml-eval demo` create MLflow's store and the producer's prediction
  tables; `ml-eval build` only reads them, so it refuses when they are missing
  (`require_sources`) instead of creating empty ones under a mistyped schema name.
- MLflow's schema revision must be one the project is tested against (var
  `mlflow_tested_revisions`, which the dbt hook `check_mlflow_schema` reads too): `train`
  refuses another one, `build` warns, as the hook does, and refuses under `--warn-error`.
- One `ml-eval build`, `demo` or `train` at a time per database (`exclusive`): a session-level
  advisory lock held on a connection of its own for the whole invocation; a second one exits
  with one line naming the first.

The names the tool puts into SQL (the database, the schemas) are checked where the
configuration is resolved (`ml_eval.config.check_name`).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from ml_eval import changes
from ml_eval.config import Config
from ml_eval.errors import UserError
from ml_eval.warehouse import Warehouse

# the tables the producer (`ml-eval train`) creates in the dataset schema, read by dbt as sources;
# the change tracking (ml_eval.changes) adds the two version tables
PRODUCER_TABLES = (
    "datasets", "samples", "targets", "classes", "run_datasets", "predictions", "prediction_scores",
    "run_versions", "dataset_versions",
)  # fmt: skip
LOCK_NAME = "ml-eval: one build, demo or train per database"
# pg_advisory_lock's bigint key, derived from the fixed name above
LOCK_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)
EXITING_HOLDER_RETRIES = 20  # 0.1 s apart: how long a holder gone from pg_stat_activity may take to exit
TO_CREATE = "run `ml-eval train`, `ml-eval demo` or `ml-eval load-dataset` to create them"
# MLflow's tables come from MLflow itself (train, demo) or from a copy of another store
TO_CREATE_MLFLOW = (
    "run `ml-eval train` (or `ml-eval demo`) to create them, `ml-eval sync-mlflow --from URI` to copy them"
)


def _tables(conn: psycopg.Connection, schema: str, names: tuple[str, ...]) -> set[str]:
    """Which of `names` are tables or views in `schema` (read from the catalog: no privilege needed)."""
    rows = conn.execute(
        "select c.relname from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = any(%s) and c.relkind in ('r', 'p', 'v', 'm', 'f')",
        (schema, list(names)),
    ).fetchall()
    return {row[0] for row in rows}


def _schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    return conn.execute("select 1 from pg_catalog.pg_namespace where nspname = %s", (schema,)).fetchone() is not None


def mlflow_revisions(conn: psycopg.Connection, schema: str) -> list[str] | None:
    """The revisions in MLflow's alembic_version, or None when the table does not exist."""
    if not _tables(conn, schema, ("alembic_version",)):
        return None
    try:
        rows = conn.execute(
            sql.SQL("select version_num from {} order by 1").format(sql.Identifier(schema, "alembic_version"))
        ).fetchall()
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise UserError(f"cannot read {schema}.alembic_version of database {conn.info.dbname}: {first_line}") from None
    return [row[0] for row in rows]


def tested_revisions(config: Config) -> dict[str, str]:
    """revision -> MLflow release, var `mlflow_tested_revisions`."""
    return {str(revision): str(release) for revision, release in dict(config.var("mlflow_tested_revisions")).items()}


def untested_revision(conn: psycopg.Connection, config: Config) -> str | None:
    """What is wrong with MLflow's revision, in words, or None when it is tested (or there is no store yet)."""
    revisions = mlflow_revisions(conn, config.mlflow_schema)
    if revisions is None:
        return None
    tested = tested_revisions(config)
    listed = ", ".join(f"{revision} ({release})" for revision, release in tested.items())
    where = f"{config.mlflow_schema}.alembic_version of database {config.database}"
    if not revisions:
        return f"{where} is empty, so the MLflow schema revision is unknown (tested: {listed})"
    untested = [revision for revision in revisions if revision not in tested]
    if untested:
        return (
            f"MLflow schema revision {', '.join(untested)} in {where} is not one this project"
            f" is tested against (tested: {listed})"
        )
    return None


def require_database(warehouse: Warehouse) -> None:
    """Refuse when the database does not exist (a command that only reads creates none)."""
    with warehouse.connect("postgres", autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (warehouse.database,)).fetchone()
    if not exists:
        raise UserError(
            f"database {warehouse.database} does not exist at {warehouse.host}:{warehouse.port}:"
            f" run `ml-eval demo --database {warehouse.database}` to create and fill it, or set PGDATABASE"
            " (or --database) to the one that holds MLflow's tables"
        )


def require_sources(warehouse: Warehouse, config: Config, *, warn_error: bool) -> None:
    """Refuse unless MLflow's store and the producer's tables exist; warn about (or, under
    `warn_error`, refuse) an untested MLflow revision. Creates nothing."""
    database = warehouse.database
    with warehouse.connect(autocommit=True) as conn:
        mlflow, dataset = config.mlflow_schema, config.dataset_schema
        if mlflow_revisions(conn, mlflow) is None:
            state = "has no table alembic_version" if _schema_exists(conn, mlflow) else "does not exist"
            raise UserError(
                f"MLflow's tables are not in schema {mlflow} of database {database} (the schema {state}):"
                f" {TO_CREATE_MLFLOW}, or set ML_EVAL_MLFLOW_SCHEMA to the schema MLflow uses"
            )
        missing = [table for table in PRODUCER_TABLES if table not in _tables(conn, dataset, PRODUCER_TABLES)]
        if missing:
            state = "" if _schema_exists(conn, dataset) else f" (schema {dataset} does not exist)"
            raise UserError(
                f"the Dataset Database tables {', '.join(f'{dataset}.{table}' for table in missing)} are missing in"
                f" database {database}{state}: {TO_CREATE}, or set ML_EVAL_DATASET_SCHEMA to the schema they are in"
            )
        off = changes.untracked(conn, dataset)
        if off:
            raise UserError(
                f"the change tracking of {dataset}.{off[0]} is missing or disabled ({len(off)} trigger(s)):"
                " the marts would not follow changes to those tables; run `ml-eval train` or `ml-eval load-dataset`"
                " as the tables' owner to install it again"
            )
        problem = untested_revision(conn, config)
    if problem and warn_error:
        raise UserError(f"{problem}: --warn-error refuses to build on it")
    if problem:
        print(f"ml-eval: warning: {problem}: building anyway, as dbt's check_mlflow_schema does", file=sys.stderr)


def refuse_untested_revision(warehouse: Warehouse, config: Config) -> None:
    """`train` writes through MLflow 3.17, which would try to migrate another revision or fail."""
    with warehouse.connect(autocommit=True) as conn:
        problem = untested_revision(conn, config)
    if problem:
        raise UserError(
            f"{problem}: `ml-eval train` writes to it through MLflow 3.17, which would migrate it or fail,"
            " so it refuses (set ML_EVAL_MLFLOW_SCHEMA to a store of a tested revision)"
        )


def _holder_row(conn: psycopg.Connection) -> tuple | None:
    """The application_name and start (UTC) of the session holding the lock, if it is listed."""
    return conn.execute(
        "select a.application_name, to_char(a.backend_start at time zone 'utc', 'HH24:MI:SS')"
        " from pg_locks as l join pg_stat_activity as a on a.pid = l.pid"
        " where l.locktype = 'advisory' and l.granted and l.database = (select oid from pg_database"
        " where datname = current_database()) and l.classid = %s and l.objid = %s and l.objsubid = 1",
        ((LOCK_KEY >> 32) & 0xFFFFFFFF, LOCK_KEY & 0xFFFFFFFF),
    ).fetchone()


def _holder(conn: psycopg.Connection) -> str:
    """Who holds the lock: the application_name of its session and since when."""
    row = _holder_row(conn)
    if row is None:
        return "another ml-eval build, demo or train"
    since = f" (since {row[1]} UTC)" if row[1] else ""
    return f"{row[0] or 'another ml-eval build, demo or train'}{since}"


@contextmanager
def exclusive(warehouse: Warehouse, command: str, *, wait_seconds: int = 0) -> Iterator[None]:
    """Hold the database's ml-eval advisory lock for the block, or refuse with one line
    (after waiting up to `wait_seconds` for its holder to finish).

    A session-level lock on a connection of its own, so nothing dbt or MLflow commit or roll
    back releases it; it goes when the connection closes (also when the process dies)."""
    name = f"ml-eval {command} (pid {os.getpid()})"
    conn = warehouse.connect(autocommit=True, application_name=name)
    try:
        if wait_seconds > 0:
            conn.execute(sql.SQL("set lock_timeout = {}").format(sql.Literal(f"{int(wait_seconds)}s")))
            try:
                taken = conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,)).fetchone() is not None
            except psycopg.errors.LockNotAvailable:
                taken = False
        else:
            taken = conn.execute("select pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]
            # a holder no longer in pg_stat_activity is a session whose client has just closed
            # it (the previous command): its backend releases the lock as it exits, within ms
            for _ in range(EXITING_HOLDER_RETRIES):
                if taken or _holder_row(conn) is not None:
                    break
                time.sleep(0.1)
                taken = conn.execute("select pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]
        if not taken:
            waited = f" (waited {int(wait_seconds)} s)" if wait_seconds > 0 else ""
            raise UserError(
                f"{_holder(conn)} is running on database {warehouse.database}{waited}: one build, demo, train,"
                " load or sync at a time per database; wait for it to finish, then run this again"
            )
        yield
    finally:
        conn.close()


def refuse_if_running(warehouse: Warehouse, command: str) -> None:
    """Before `--fresh` drops the database: refuse if another invocation holds its lock."""
    with warehouse.connect("postgres", autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (warehouse.database,)).fetchone()
    if exists:
        with exclusive(warehouse, command):
            pass
