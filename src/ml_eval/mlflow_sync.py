"""`ml-eval sync-mlflow --from URI`: copy MLflow's tables from its own store into the warehouse.

The source is what a team gives MLflow as its backend store (`mysql+pymysql://…` for MySQL or
MariaDB, `sqlite:///…`, `postgresql://…`); the target is the warehouse's MLflow schema
(`Config.mlflow_schema`), which the dbt project reads as today.

- **DDL: MLflow's own.** The copy's tables are made by MLflow's SQLAlchemy models and alembic
  migrations (those of MLflow 3.17, which include every revision before it), upgraded to
  exactly the source's revision: MLflow 2.22's `0584bdc529eb` or 3.17's `dc11669786a5`. A
  revision outside var `mlflow_tested_revisions` is refused by name.
- **Extract: SQLAlchemy Core** over the source's own dialect, every table read in one
  repeatable-read (snapshot) transaction, the values as the driver returns them: no
  SQLAlchemy type processing, which would turn MySQL's DOUBLE into a Decimal rounded to 10
  digits. Each value is then cast to the type of the copy's column (`_canonical`); a value
  that does not fit is refused in one line, but for one kind: a file-store experiment id (too
  big for MLflow's PostgreSQL `integer`) widens the copy's experiment id columns to bigint
  (`_widen_experiment_ids`), the ids unchanged.
- **Diff: primary key + row hash**, per table. MLflow's tables carry no updated-at column, so
  the copy's rows are hashed (by primary key) and every source row is compared with them:
  new keys are inserted, keys whose hash differs are updated, keys gone from the source are
  deleted. Tables whose key is the whole row (`metrics`) compare keys only.
- **Load: psycopg COPY**, into the tables on the first sync (the copy empty), else into a temporary table
  merged with `insert … on conflict do update` after the deletions (children before
  parents), so a row gone from the source frees its unique values (an experiment's name) first.
- **Atomic:** the DDL, every table's changes and the schema's marker comment are one
  PostgreSQL transaction on the warehouse: a sync that fails or is killed leaves the previous
  copy (and so the marts built on it) exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ml_eval.errors import UserError
from ml_eval.warehouse import Warehouse

log = logging.getLogger(__name__)

# What the schema's comment starts with when this command made the copy (and which source).
MARKER = "ml-eval sync-mlflow copy of "
# the drivers each backend is read with (the bare scheme is MLflow's spelling; psycopg2 and
# mysqlclient are not installed)
DRIVERS = {"mysql": "mysql+pymysql", "mysql+pymysql": "mysql+pymysql", "mariadb+pymysql": "mysql+pymysql",
           "postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
           "postgresql+psycopg": "postgresql+psycopg", "sqlite": "sqlite"}  # fmt: skip
PROGRESS_ROWS = 100_000  # a progress line per this many rows read from one table
# MLflow's tables whose rows stay out of the copy, each with the columns elsewhere that point at
# it, copied as null (what MLflow's own ON DELETE SET NULL leaves): the AI gateway's secrets are
# encrypted under a key MLflow derives from a passphrase whose default is published in its
# source, they serve no evaluation, and every role that reads the copy would read them.
WITHHELD = {"secrets": (("model_definitions", "secret_id"),)}
WITHHELD_REFERENCES = frozenset(reference for references in WITHHELD.values() for reference in references)
INT_RANGES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}


@dataclass(frozen=True)
class Source:
    """The MLflow store to read: a SQLAlchemy URL, with the password kept out of every message."""

    url: Any  # sqlalchemy.engine.URL
    password: str | None

    @property
    def display(self) -> str:
        """The URL as messages show it: the password masked."""
        return self.url.render_as_string(hide_password=True)

    @property
    def identity(self) -> str:
        """What the copy's marker records: the URL without any password."""
        return self.url.set(password=None).render_as_string(hide_password=True)

    def mask(self, text: str) -> str:
        """`text` with the password (plain and URL-encoded) replaced by ***."""
        from urllib.parse import quote

        if self.password:
            for form in {self.password, quote(self.password, safe="")}:
                text = text.replace(form, "***")
        return text


def resolve_source(
    uri: str, *, password: str | None = None, password_file: str | None = None, must_exist: bool = True
) -> Source:
    """The source store. Its password is the URL's, else `password` ($ML_EVAL_MLFLOW_PASSWORD),
    else the first line of `password_file` (--password-file or $ML_EVAL_MLFLOW_PASSWORD_FILE).
    A SQLite file must exist unless not `must_exist` (`ml-eval train`: MLflow creates it)."""
    import sqlalchemy as sa

    try:
        url = sa.engine.make_url(uri)
    except sa.exc.ArgumentError:
        raise UserError("--from must be a SQLAlchemy URL such as mysql+pymysql://user@host:3306/mlflow") from None
    driver = DRIVERS.get(url.drivername)
    if driver is None:
        raise UserError(
            f"--from {url.drivername}://…: not a backend this command reads; use mysql+pymysql://, sqlite:/// or"
            " postgresql://"
        )
    url = url.set(drivername=driver)
    if driver != "sqlite" and url.password is None:
        if password is None and password_file:
            try:
                lines = Path(password_file).expanduser().read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise UserError(f"cannot read the password file {password_file}: {exc.strerror}") from None
            password = lines[0] if lines else ""
        if password is not None:
            url = url.set(password=password)
    password = url.password
    if driver == "sqlite":
        path = url.database or ""
        if not path or path == ":memory:":
            raise UserError("--from sqlite:///PATH must name MLflow's database file")
        if must_exist and not Path(path).is_file():
            raise UserError(f"--from {url.render_as_string()}: no such file {Path(path).resolve()}")
        url = url.set(database=str(Path(path).resolve()))  # the copy's marker names the file wherever run from
    return Source(url, password or None)


def _engine(source: Source):
    """A SQLAlchemy engine that reads `source` in one snapshot: REPEATABLE READ on MySQL and
    PostgreSQL; on SQLite an explicit BEGIN (the sqlite3 module starts none for SELECT), the
    file opened read-only."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    if source.url.drivername == "sqlite":
        path = Path(source.url.database).resolve()
        # pysqlite's URI form (SQLAlchemy's documented spelling): the file opened read-only
        read_only = sa.engine.URL.create("sqlite", database=f"file:{path}", query={"mode": "ro", "uri": "true"})
        engine = sa.create_engine(read_only, poolclass=NullPool)

        @sa.event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection, record):
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN")

        return engine
    connect_args = {"connect_timeout": 10}
    return sa.create_engine(
        source.url, poolclass=NullPool, isolation_level="REPEATABLE READ", connect_args=connect_args
    )


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


# --- the copy's tables, read from the warehouse's catalog -------------------------------------


@dataclass
class Table:
    name: str
    columns: list[str]  # the columns copied: every column but generated ones
    types: list[str]  # format_type of each
    key: list[int]  # positions of the primary key's columns in `columns`
    parents: set[str] = field(default_factory=set)

    @property
    def whole_row_key(self) -> bool:
        return len(self.key) == len(self.columns)


def _tables(conn: psycopg.Connection, schema: str) -> dict[str, Table]:
    """MLflow's tables in `schema` (all but alembic_version and WITHHELD), with their copied
    columns and keys."""
    rows = conn.execute(
        "select c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),"
        " coalesce(a.attnum = any(p.conkey), false)"
        " from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " join pg_catalog.pg_attribute as a on a.attrelid = c.oid"
        " left join pg_catalog.pg_constraint as p on p.conrelid = c.oid and p.contype = 'p'"
        " where n.nspname = %s and c.relkind in ('r', 'p') and c.relname <> 'alembic_version'"
        " and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''"
        " order by c.relname, a.attnum",
        (schema,),
    ).fetchall()
    tables: dict[str, Table] = {}
    for name, column, type_name, in_key in rows:
        if name in WITHHELD:
            continue
        table = tables.setdefault(name, Table(name, [], [], []))
        if in_key:
            table.key.append(len(table.columns))
        table.columns.append(column)
        table.types.append(type_name)
    for table in tables.values():
        if not table.key:  # every MLflow table has one; compare whole rows otherwise
            table.key = list(range(len(table.columns)))
    for child, parent in conn.execute(
        "select c.relname, f.relname from pg_catalog.pg_constraint as k"
        " join pg_catalog.pg_class as c on c.oid = k.conrelid join pg_catalog.pg_class as f on f.oid = k.confrelid"
        " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " where k.contype = 'f' and n.nspname = %s",
        (schema,),
    ).fetchall():
        if child in tables and parent in tables and child != parent:
            tables[child].parents.add(parent)
    return tables


def _parents_first(tables: dict[str, Table]) -> list[Table]:
    """The tables ordered so that every table comes after the tables its foreign keys name."""
    done: list[Table] = []
    placed: set[str] = set()
    waiting = sorted(tables)
    while waiting:
        ready = [name for name in waiting if tables[name].parents <= placed] or waiting[:1]  # a cycle: break it
        for name in ready:
            done.append(tables[name])
            placed.add(name)
        waiting = [name for name in waiting if name not in placed]
    return done


# --- values: each cast to the copy's column type, so both sides compare alike ---------------


def _converter(table: str, column: str, type_name: str) -> Callable[[Any], Any]:
    """How a source value becomes the value psycopg reads back from the copy's column."""
    base = type_name.split("(")[0]
    if (table, column) in WITHHELD_REFERENCES:
        return lambda value: None

    def refuse(value: Any, why: str) -> None:
        raise UserError(f"{table}.{column} holds {value!r}, {why}")

    if base in INT_RANGES:
        limit = INT_RANGES[base]

        def to_int(value):
            if isinstance(value, float) and not value.is_integer():
                refuse(value, f"not an integer, in MLflow's {base} column")
            number = int(value)
            if not -limit <= number < limit:
                refuse(number, f"which does not fit MLflow's PostgreSQL {base} column")
            return number

        return to_int
    if base in ("double precision", "real"):
        return float
    if base == "boolean":
        return bool
    if base in ("character varying", "text", "character"):
        return lambda value: value.decode("utf-8") if isinstance(value, bytes) else str(value)
    if base == "bytea":
        return bytes
    if base in ("json", "jsonb"):
        # the copy is read as text; json keeps the source's text, jsonb normalises it
        if base == "jsonb":
            return lambda value: json.dumps(json.loads(value), sort_keys=True)
        return lambda value: value.decode("utf-8") if isinstance(value, bytes) else str(value)
    if base == "date":
        return lambda value: dt.date.fromisoformat(value) if isinstance(value, str) else value
    if base.startswith("timestamp"):
        return lambda value: dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return lambda value: value


def _key(values: Iterable[Any]) -> tuple:
    """A tuple usable as a dict key that tells floats apart bit for bit (NaN included)."""
    return tuple(value.hex() if isinstance(value, float) else value for value in values)


def _digest(row: tuple) -> bytes:
    return hashlib.blake2b(repr(_key(row)).encode(), digest_size=16).digest()


# --- the sync ---------------------------------------------------------------------------------


@dataclass
class Change:
    table: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted


@dataclass
class SyncResult:
    source: str
    revision: str
    release: str
    schema: str
    database: str
    created: bool
    changes: list[Change]
    seconds: float

    @property
    def summary(self) -> str:
        changed = [change for change in self.changes if change.changed]
        inserted = sum(change.inserted for change in self.changes)
        updated = sum(change.updated for change in self.changes)
        deleted = sum(change.deleted for change in self.changes)
        read = sum(change.read for change in self.changes)
        made = ", schema created" if self.created else ""
        return (
            f"synced {self.source} (revision {self.revision}, {self.release}) into schema {self.schema} of database"
            f" {self.database}{made}: {len(self.changes)} tables, {read} rows read, {len(changed)} tables changed,"
            f" +{inserted} ~{updated} -{deleted} rows, {self.seconds:.1f} s"
        )


def changed_names(changes: Iterable[Change]) -> set[str]:
    return {change.table for change in changes if change.changed}


def _progress(line: str) -> None:
    print(f"sync-mlflow: {line}", file=sys.stderr, flush=True)


def _source_revision(conn, source: Source) -> str:
    import sqlalchemy as sa

    try:
        rows = conn.execute(sa.select(sa.column("version_num")).select_from(sa.table("alembic_version"))).all()
    except sa.exc.DBAPIError as exc:
        raise UserError(
            f"{source.display} has no readable alembic_version table, so it is not an MLflow store:"
            f" {source.mask(_first_line(exc))}"
        ) from None
    if len(rows) != 1:
        raise UserError(f"{source.display}: alembic_version holds {len(rows)} revisions, not one")
    return str(rows[0][0])


def _marker(conn: psycopg.Connection, schema: str) -> tuple[bool, str | None]:
    """Whether the schema exists, and its comment."""
    row = conn.execute(
        "select pg_catalog.obj_description(oid, 'pg_namespace') from pg_catalog.pg_namespace where nspname = %s",
        (schema,),
    ).fetchone()
    return (row is not None, row[0] if row else None)


def _copy_revision(conn: psycopg.Connection, schema: str) -> str | None:
    table = sql.Identifier(schema, "alembic_version").as_string(conn)
    if conn.execute("select pg_catalog.to_regclass(%s) is null", (table,)).fetchone()[0]:
        return None
    row = conn.execute(sql.SQL("select version_num from {}").format(sql.Identifier(schema, "alembic_version")))
    found = row.fetchone()
    return found[0] if found else None


def _migrate(sa_conn, revision: str, *, create: bool) -> None:
    """Make (or upgrade) MLflow's tables on `sa_conn` at `revision`, inside its transaction:
    MLflow's initial models, then its alembic migrations run on this very connection (MLflow's
    own env.py opens a connection of its own, which would commit apart)."""
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory
    from mlflow.store.db.base_sql_model import Base
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    if create:
        InitialBase.metadata.create_all(sa_conn)
    config = _get_alembic_config(str(sa_conn.engine.url))
    script = ScriptDirectory.from_config(config)

    def upgrade(current, context):
        return script._upgrade_revs(revision, current)

    with EnvironmentContext(config, script, fn=upgrade, destination_rev=revision) as environment:
        environment.configure(connection=sa_conn, target_metadata=Base.metadata, render_as_batch=True)
        with environment.begin_transaction():
            environment.run_migrations()


def _is_ancestor(older: str, newer: str) -> bool:
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    script = ScriptDirectory.from_config(_get_alembic_config("sqlite://"))
    try:
        return any(rev.revision == older for rev in script.iterate_revisions(newer, "base"))
    except Exception:  # an unknown revision
        return False


def _read_copy(conn: psycopg.Connection, schema: str, table: Table, convert: list) -> dict[tuple, bytes | None]:
    """The copy's rows: primary key -> row hash (None when the key is the whole row)."""
    selected = [
        sql.SQL("{}::text").format(sql.Identifier(column))
        if type_name.split("(")[0] in ("json", "jsonb")
        else sql.Identifier(column)
        for column, type_name in zip(table.columns, table.types, strict=True)
    ]
    query = sql.SQL("select {} from {}").format(sql.SQL(", ").join(selected), sql.Identifier(schema, table.name))
    held: dict[tuple, bytes | None] = {}
    jsonb = [i for i, type_name in enumerate(table.types) if type_name == "jsonb"]
    with conn.cursor(name=f"sync_read_{table.name}") as cursor:
        cursor.itersize = 20_000
        cursor.execute(query)
        for row in cursor:
            if jsonb:
                row = tuple(
                    convert[i](value) if i in jsonb and value is not None else value for i, value in enumerate(row)
                )
            key = _key(row[i] for i in table.key)
            held[key] = None if table.whole_row_key else _digest(row)
    return held


def _source_rows(sa_conn, table: Table) -> Iterator[tuple]:
    import sqlalchemy as sa

    query = sa.select(*[sa.column(name) for name in table.columns]).select_from(sa.table(table.name))
    result = sa_conn.execution_options(stream_results=True, yield_per=10_000).execute(query)
    for row in result:
        yield tuple(row)


def _apply_table(
    conn: psycopg.Connection, sa_source, schema: str, table: Table, source: Source, *, direct_allowed: bool
) -> tuple[Change, list[tuple], sql.Composed | None]:
    """Read `table` from the source: COPY its rows straight into an empty copy (when every
    table of the copy is empty, `direct_allowed`), else its new and changed rows into a stage.
    Return the counts, the keys to delete, and the upsert of the staged rows, which the caller
    runs after every deletion (a row gone from the source may hold a unique value, e.g. an
    experiment's name, that a new row takes)."""
    change = Change(table.name)
    convert = [_converter(table.name, c, t) for c, t in zip(table.columns, table.types, strict=True)]
    held = _read_copy(conn, schema, table, convert)
    target = sql.Identifier(schema, table.name)
    columns = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    direct = direct_allowed and not held  # the first sync: COPY straight into the tables
    stage = sql.Identifier(f"sync_{table.name}")
    if not direct:
        conn.execute(
            sql.SQL("create temporary table {} on commit drop as select {} from {} with no data").format(
                stage, columns, target
            )
        )
    seen: set[tuple] = set()
    started = time.monotonic()
    into = target if direct else stage
    with conn.cursor().copy(sql.SQL("copy {} ({}) from stdin").format(into, columns)) as copy:
        for raw in _source_rows(sa_source, table):
            row = tuple(None if value is None else fn(value) for fn, value in zip(convert, raw, strict=True))
            change.read += 1
            if change.read % PROGRESS_ROWS == 0:
                _progress(f"{table.name}: {change.read} rows read ({time.monotonic() - started:.1f} s)")
            key = _key(row[i] for i in table.key)
            if key in seen:
                raise UserError(f"{source.display}: {table.name} holds the primary key {key} twice")
            seen.add(key)
            if key in held:
                if table.whole_row_key or held[key] == _digest(row):
                    continue
                change.updated += 1
            else:
                change.inserted += 1
            copy.write_row(row)
    upsert = None
    if not direct and change.inserted + change.updated:
        keys = sql.SQL(", ").join(sql.Identifier(table.columns[i]) for i in table.key)
        others = [c for i, c in enumerate(table.columns) if i not in table.key]
        if others:
            update = sql.SQL("do update set {}").format(
                sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in others)
            )
        else:
            update = sql.SQL("do nothing")
        upsert = sql.SQL("insert into {} ({}) select {} from {} on conflict ({}) {}").format(
            target, columns, columns, stage, keys, update
        )
    gone = [key for key in held if key not in seen]
    change.deleted = len(gone)
    return change, gone, upsert


def _delete(conn: psycopg.Connection, schema: str, table: Table, keys: list[tuple]) -> None:
    key_columns = [table.columns[i] for i in table.key]
    stage = sql.Identifier(f"sync_delete_{table.name}")
    names = sql.SQL(", ").join(map(sql.Identifier, key_columns))
    conn.execute(
        sql.SQL("create temporary table {} on commit drop as select {} from {} with no data").format(
            stage, names, sql.Identifier(schema, table.name)
        )
    )
    floats = {n for n, i in enumerate(table.key) if table.types[i] in ("double precision", "real")}
    with conn.cursor().copy(sql.SQL("copy {} ({}) from stdin").format(stage, names)) as copy:
        for key in keys:  # _key turned floats into their hex form: back to floats
            copy.write_row(tuple(float.fromhex(v) if n in floats and v is not None else v for n, v in enumerate(key)))
    match = sql.SQL(" and ").join(
        sql.SQL("t.{0} is not distinct from d.{0}").format(sql.Identifier(c)) for c in key_columns
    )
    conn.execute(
        sql.SQL("delete from {} as t using {} as d where {}").format(sql.Identifier(schema, table.name), stage, match)
    )


def _advance_sequences(conn: psycopg.Connection, schema: str, tables: Iterable[Table]) -> None:
    """Serial and identity columns: their sequence after the copied ids, as in the source."""
    for table in tables:
        qualified = sql.Identifier(schema, table.name).as_string(conn)
        for column in table.columns:
            sequence = conn.execute("select pg_catalog.pg_get_serial_sequence(%s, %s)", (qualified, column)).fetchone()
            if sequence and sequence[0]:
                conn.execute(
                    sql.SQL(
                        "select pg_catalog.setval(%s, coalesce(max({0}), 1), max({0}) is not null) from {1}"
                    ).format(sql.Identifier(column), sql.Identifier(schema, table.name)),
                    (sequence[0],),
                )


@contextmanager
def _target(warehouse: Warehouse, schema: str) -> Iterator[Any]:
    """A SQLAlchemy connection (psycopg 3) to the warehouse, search_path = `schema`, in one transaction."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(warehouse.sqlalchemy_url(schema), poolclass=NullPool)
    try:
        try:
            sa_conn = engine.connect()
        except sa.exc.OperationalError as exc:
            raise UserError(
                f"cannot connect to the warehouse database {warehouse.database}: {_first_line(exc)}"
            ) from None
        with sa_conn:
            sa_conn.begin()  # explicit: most statements go through the driver connection, unseen by SQLAlchemy
            yield sa_conn
    finally:
        engine.dispose()


def _refuse_untested(source: Source, revision: str, tested: Mapping[str, str]) -> None:
    if revision not in tested:
        listed = ", ".join(f"{rev} ({release})" for rev, release in tested.items())
        raise UserError(
            f"MLflow schema revision {revision} of {source.display} is not one this project is tested"
            f" against (tested: {listed}): sync-mlflow refuses it"
        )


def check_source(source: Source, tested: Mapping[str, str]) -> None:
    """Connect to `source` and check its schema revision, before anything is created in the
    warehouse: a store that cannot be read leaves no empty warehouse database behind."""
    import sqlalchemy as sa

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    engine = _engine(source)
    try:
        try:
            with engine.connect() as sa_source:
                revision = _source_revision(sa_source, source)
        except sa.exc.DBAPIError as exc:
            raise UserError(
                f"cannot connect to the MLflow store {source.display}: {source.mask(_first_line(exc))}"
            ) from None
        _refuse_untested(source, revision, tested)
    finally:
        engine.dispose()


def sync(source: Source, warehouse: Warehouse, schema: str, tested: Mapping[str, str]) -> SyncResult:
    """Copy `source`'s MLflow tables into `schema` of the warehouse, in one transaction."""
    import sqlalchemy as sa

    started = time.monotonic()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    engine = _engine(source)
    try:
        try:
            connection = engine.connect()
        except sa.exc.DBAPIError as exc:
            raise UserError(
                f"cannot connect to the MLflow store {source.display}: {source.mask(_first_line(exc))}"
            ) from None
        with connection as sa_source, sa_source.begin():
            revision = _source_revision(sa_source, source)
            _refuse_untested(source, revision, tested)
            source_tables = set(sa.inspect(sa_source).get_table_names())
            with _target(warehouse, schema) as sa_target:
                conn: psycopg.Connection = sa_target.connection.driver_connection
                created = _prepare(conn, sa_target, schema, source, revision)
                _clear_withheld(conn, schema)
                tables = _tables(conn, schema)
                missing = sorted(set(tables) - source_tables)
                if missing:
                    raise UserError(
                        f"{source.display} is at revision {revision} but lacks MLflow's tables {', '.join(missing)}"
                    )
                _check_columns(sa_source, source, tables)
                if _widen_experiment_ids(conn, sa_source, schema, tables):
                    tables = _tables(conn, schema)
                changes, deletions, upserts = [], [], []
                first = not any(
                    conn.execute(
                        sql.SQL("select exists (select from {})").format(sql.Identifier(schema, t))
                    ).fetchone()[0]
                    for t in tables
                )
                for table in _parents_first(tables):
                    change, gone, upsert = _apply_table(conn, sa_source, schema, table, source, direct_allowed=first)
                    changes.append(change)
                    deletions.append((table, gone))
                    upserts.append(upsert)
                    if change.read or change.changed:
                        _progress(
                            f"{table.name}: {change.read} rows, +{change.inserted} ~{change.updated}"
                            f" -{change.deleted} ({time.monotonic() - started:.1f} s)"
                        )
                # deletions first, children before parents; then the new and changed rows,
                # parents before children
                for table, gone in reversed(deletions):
                    if gone:
                        _delete(conn, schema, table, gone)
                for upsert in upserts:
                    if upsert is not None:
                        conn.execute(upsert)
                _advance_sequences(conn, schema, [t for t, gone in deletions if t.name in changed_names(changes)])
                conn.execute(
                    sql.SQL("comment on schema {} is {}").format(
                        sql.Identifier(schema), sql.Literal(f"{MARKER}{source.identity}")
                    )
                )
                sa_target.commit()
    except sa.exc.DBAPIError as exc:
        raise UserError(f"sync-mlflow from {source.display} failed: {source.mask(_first_line(exc))}") from None
    except psycopg.Error as exc:
        raise UserError(f"sync-mlflow from {source.display} failed: {source.mask(_first_line(exc))}") from None
    finally:
        engine.dispose()
    return SyncResult(
        source.display,
        revision,
        tested[revision],
        schema,
        warehouse.database,
        created,
        changes,
        time.monotonic() - started,
    )


def _clear_withheld(conn: psycopg.Connection, schema: str) -> None:
    """Empty the WITHHELD tables of the copy (a copy made before they were withheld holds their
    rows); their foreign keys set the references to null."""
    for name in WITHHELD:
        exists = conn.execute("select to_regclass(%s) is not null", (sql.Identifier(schema, name).as_string(conn),))
        if exists.fetchone()[0]:
            deleted = conn.execute(sql.SQL("delete from {}").format(sql.Identifier(schema, name))).rowcount
            if deleted:
                _progress(f"{name}: {deleted} rows deleted from the copy (MLflow's {name} are not copied)")


def _prepare(conn: psycopg.Connection, sa_target, schema: str, source: Source, revision: str) -> bool:
    """Make the copy's schema MLflow's at `revision` (inside the transaction); True if it was created.

    Refuses a schema that holds MLflow tables this command did not copy (a live MLflow store,
    e.g. the one `ml-eval train` writes) or a copy of another store."""
    exists, comment = _marker(conn, schema)
    current = _copy_revision(conn, schema) if exists else None
    ours = bool(comment and comment.startswith(MARKER))
    if current is not None and not ours:
        raise UserError(
            f"schema {schema} of database {conn.info.dbname} holds an MLflow store sync-mlflow did not copy"
            " (MLflow writes there itself, e.g. `ml-eval train`): sync into another schema (ML_EVAL_MLFLOW_SCHEMA)"
            " or database"
        )
    if ours and comment != f"{MARKER}{source.identity}":
        raise UserError(
            f"schema {schema} of database {conn.info.dbname} is a copy of {comment.removeprefix(MARKER)}, not of"
            f" {source.identity}: sync into another schema (ML_EVAL_MLFLOW_SCHEMA) or database"
        )
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    if current is None:
        _progress(f"creating MLflow's tables at revision {revision} in schema {schema} (MLflow's migrations)")
        _migrate(sa_target, revision, create=True)
        return True
    if current != revision:
        if not _is_ancestor(current, revision):
            raise UserError(
                f"the copy in schema {schema} is at MLflow revision {current}, which is not before the source's"
                f" {revision}: MLflow cannot downgrade it; sync into another schema"
            )
        _progress(f"upgrading the copy from MLflow revision {current} to {revision}")
        _migrate(sa_target, revision, create=False)
    return False


def _experiment_id_columns(conn: psycopg.Connection, schema: str) -> list[tuple[str, str, str]]:
    """The copy's columns that hold an experiment id, with their type: experiments.experiment_id
    and every column named experiment_id or referencing it by a foreign key."""
    return conn.execute(
        "select c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)"
        " from pg_catalog.pg_attribute as a join pg_catalog.pg_class as c on c.oid = a.attrelid"
        " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped"
        " and (a.attname = 'experiment_id' or exists ("
        "  select from pg_catalog.pg_constraint as k join pg_catalog.pg_class as f on f.oid = k.confrelid"
        "  join pg_catalog.pg_attribute as fa on fa.attrelid = f.oid and fa.attnum = k.confkey[1]"
        "  where k.contype = 'f' and k.conrelid = c.oid and k.conkey = array[a.attnum]"
        "  and f.relname = 'experiments' and fa.attname = 'experiment_id'))"
        " order by c.relname <> 'experiments', c.relname, a.attname",
        (schema,),
    ).fetchall()


def _widen_experiment_ids(conn: psycopg.Connection, sa_source, schema: str, tables: Mapping[str, Table]) -> bool:
    """Widen the copy's experiment id columns to bigint when the source holds an id that does not
    fit MLflow's PostgreSQL integer: a file store migrated by `mlflow migrate-filestore` keeps
    its ids (e.g. 825727312250204502), which SQLite's INTEGER holds. The ids stay as they are;
    only the column type differs from MLflow's DDL. True when it widened them."""
    import sqlalchemy as sa

    columns = [(t, c, ty) for t, c, ty in _experiment_id_columns(conn, schema) if t in tables]
    narrow = [(t, c) for t, c, type_name in columns if type_name in ("integer", "smallint")]
    if not narrow or "experiments" not in tables:
        return False
    # the experiments' own ids decide (one small table); an id beyond 32 bits elsewhere, with
    # no experiment of that id, is refused by the value's converter
    low, high = sa_source.execute(
        sa.select(sa.func.min(sa.column("experiment_id")), sa.func.max(sa.column("experiment_id"))).select_from(
            sa.table("experiments")
        )
    ).one()
    limit = INT_RANGES["integer"]
    value = None
    for found in (high, low):
        try:
            number = int(found)
        except (TypeError, ValueError):  # none, or not an integer: the converter says so in one line
            continue
        if not -limit <= number < limit:
            value = number
            break
    if value is None:
        return False
    dependents = conn.execute(
        "select distinct dn.nspname || '.' || dc.relname"
        " from pg_catalog.pg_depend as d join pg_catalog.pg_rewrite as r on r.oid = d.objid"
        " join pg_catalog.pg_class as dc on dc.oid = r.ev_class"
        " join pg_catalog.pg_namespace as dn on dn.oid = dc.relnamespace"
        " join pg_catalog.pg_class as c on c.oid = d.refobjid"
        " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " join pg_catalog.pg_attribute as a on a.attrelid = c.oid and a.attnum = d.refobjsubid"
        " where d.classid = 'pg_catalog.pg_rewrite'::regclass and d.refclassid = 'pg_catalog.pg_class'::regclass"
        " and n.nspname = %s and (c.relname, a.attname) in (select * from unnest(%s::text[], %s::text[]))"
        " order by 1",
        (schema, [t for t, _ in narrow], [c for _, c in narrow]),
    ).fetchall()
    if dependents:
        raise UserError(
            f"experiments.experiment_id holds {value} (a file-store experiment id), which does not fit the copy's"
            f" integer columns, and views depend on the copy's experiment ids ({', '.join(d for (d,) in dependents)}):"
            " drop them, sync again (the copy's experiment ids become bigint); `ml-eval build` makes the project's"
            " own views again"
        )
    _progress(f"experiments.experiment_id holds {value}: the copy's {len(narrow)} experiment id columns become bigint")
    for table, column in narrow:
        name = sql.Identifier(schema, table)
        conn.execute(sql.SQL("alter table {} alter column {} type bigint").format(name, sql.Identifier(column)))
        (sequence,) = conn.execute("select pg_get_serial_sequence(%s, %s)", (name.as_string(conn), column)).fetchone()
        if sequence:  # experiments' own id sequence, which the sync advances past the ids
            conn.execute(sql.SQL("alter sequence {} as bigint").format(sql.SQL(sequence)))
    return True


def _check_columns(sa_source, source: Source, tables: Mapping[str, Table]) -> None:
    """Every copied column must be in the source's table, and the source must have no other
    (but generated ones): else its schema is not MLflow's for its revision."""
    import sqlalchemy as sa

    inspector = sa.inspect(sa_source)
    for table in tables.values():
        found = {column["name"] for column in inspector.get_columns(table.name) if not column.get("computed")}
        missing, extra = set(table.columns) - found, found - set(table.columns)
        if missing or extra:
            said = ", ".join(
                part
                for part in (
                    f"lacks {', '.join(sorted(missing))}" if missing else "",
                    f"has {', '.join(sorted(extra))} besides" if extra else "",
                )
                if part
            )
            raise UserError(f"{source.display}: table {table.name} {said} MLflow's columns for its revision")


# --- who writes the warehouse's MLflow schema ---------------------------------------------------


def copied_from(warehouse: Warehouse, schema: str) -> str | None:
    """The source a sync-mlflow copy in `schema` was made from, or None when the schema is not one."""
    with warehouse.connect(autocommit=True) as conn:
        _, comment = _marker(conn, schema)
    return comment.removeprefix(MARKER) if comment and comment.startswith(MARKER) else None


def holds_own_store(warehouse: Warehouse, schema: str) -> bool:
    """Whether `schema` holds an MLflow store MLflow writes itself (tables, and no copy's marker)."""
    with warehouse.connect(autocommit=True) as conn:
        exists, comment = _marker(conn, schema)
        current = _copy_revision(conn, schema) if exists else None
    return current is not None and not (comment and comment.startswith(MARKER))


def refuse_writes_to_copy(warehouse: Warehouse, schema: str, command: str) -> None:
    """MLflow must not write into a copy sync-mlflow owns: the next sync would undo (delete) it."""
    source = copied_from(warehouse, schema)
    if source is not None:
        raise UserError(
            f"schema {schema} of database {warehouse.database} is sync-mlflow's copy of {source}: {command} would"
            f" write MLflow runs into the copy, which the next sync deletes; set ML_EVAL_MLFLOW_URI={source} so"
            " MLflow writes there and the copy follows, or use another schema (ML_EVAL_MLFLOW_SCHEMA)"
        )


def source_from_config(config, *, must_exist: bool = True) -> Source:
    """The store ML_EVAL_MLFLOW_URI names, with its password from the environment or file."""
    return resolve_source(
        config.mlflow_uri,
        password=config.mlflow_password,
        password_file=config.mlflow_password_file,
        must_exist=must_exist,
    )


def tracking_uri(source: Source) -> str:
    """The URI MLflow itself is given for `source` (password included: never print it)."""
    return source.url.render_as_string(hide_password=False)


def sync_configured(config, warehouse: Warehouse, *, report: Callable[[str], None] | None = None) -> SyncResult:
    """Sync the store ML_EVAL_MLFLOW_URI names into the warehouse's MLflow schema (the caller
    holds the database's lock); `report` gets the summary line."""
    from ml_eval.preflight import tested_revisions

    result = sync(source_from_config(config), warehouse, config.mlflow_schema, tested_revisions(config))
    if report is not None:
        report(result.summary)
    return result


def run_in_copy(warehouse: Warehouse, schema: str, run_uuid: str) -> bool:
    """Whether the warehouse's MLflow schema holds run `run_uuid` (False when there is no runs table)."""
    table = sql.Identifier(schema, "runs")
    with warehouse.connect(autocommit=True) as conn:
        if conn.execute("select pg_catalog.to_regclass(%s) is null", (table.as_string(conn),)).fetchone()[0]:
            return False
        found = conn.execute(sql.SQL("select 1 from {} where run_uuid = %s").format(table), (str(run_uuid),))
        return found.fetchone() is not None
