"""Where the warehouse is: the standard libpq variables, or an embedded PostgreSQL.

dbt (through profiles.yml), MLflow and our own Python all read the same five variables:
PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE. When PGHOST is unset, an embedded
PostgreSQL 16 (the `pgserver` wheel) is started in `.local/pgdata` of the project and
the variables are pointed at its unix socket. Which database and where the embedded server
keeps its files come from the resolved `ml_eval.config.Config`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from ml_eval.config import Config
from ml_eval.errors import UserError

log = logging.getLogger(__name__)

# The search path of every connection the tool opens with psycopg: pg_catalog alone, so no
# function, operator or table another role planted can be a better match for an unqualified
# name (PostgreSQL resolves a function across every schema of the path by best signature).
# Everything else the code names is schema-qualified. row_security=off makes a query that a
# policy would filter fail instead of running the policy's expressions as the caller.
SAFE_OPTIONS = "-csearch_path=pg_catalog -crow_security=off"


@dataclass(frozen=True)
class Warehouse:
    """Connection settings of one PostgreSQL database."""

    host: str
    port: int
    user: str
    password: str
    database: str
    embedded: bool = False

    def conninfo(self, database: str | None = None, options: str = "") -> str:
        """libpq's connection string; `options` (e.g. "-cwork_mem=64MB") come before SAFE_OPTIONS,
        which come last so that no caller's option can replace the safe search path."""
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=database or self.database,
            connect_timeout=10,
            options=f"{options} {SAFE_OPTIONS}".strip(),
        )

    def connect(self, database: str | None = None, *, refuse_views: bool = False, **kwargs) -> psycopg.Connection:
        """A connection whose search path is pg_catalog alone (SAFE_OPTIONS).

        `refuse_views`: for code that reads tables another role owns (the producer the seeds,
        the consumers the published marts), a view or foreign table in their place is refused
        (restrict_nonsystem_relation_kind, PostgreSQL 12.20/13.16/14.13/15.8/16.4 and later),
        so their owner cannot swap in a view whose functions would run as the reader."""
        try:
            conn = psycopg.connect(self.conninfo(database, kwargs.pop("options", "")), **kwargs)
        except psycopg.OperationalError as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise UserError(
                f"cannot connect to PostgreSQL at {self.host}:{self.port} "
                f"database {database or self.database!r}: {first_line}"
            ) from None
        if refuse_views:
            conn.execute(
                "select pg_catalog.set_config(name, 'view, foreign-table', false) from pg_catalog.pg_settings"
                " where name = 'restrict_nonsystem_relation_kind'"
            )
            if not conn.autocommit:
                conn.commit()
        return conn

    def env(self) -> dict[str, str]:
        """The libpq variables that point every tool at this database."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": self.database,
        }

    def sqlalchemy_url(self, schema: str, *, read_only: bool = False) -> str:
        """A SQLAlchemy URL (psycopg 3 driver) whose search_path is `schema`, for MLflow.

        MLflow names its tables unqualified and creates them in `schema`: only its owner (the
        producer; `ml-eval roles` checks) may create in it, and pg_catalog, not listed, is
        searched first. `read_only`: every transaction of the session is read-only
        (default_transaction_read_only), so MLflow can read but never write (`ml-eval mlflow-ui`)."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        settings = f"-csearch_path={schema}" + (" -cdefault_transaction_read_only=on" if read_only else "")
        options = quote(settings, safe="")
        if self.host.startswith("/"):
            return (
                f"postgresql+psycopg://{auth}@/{quote(self.database, safe='')}"
                f"?host={quote(self.host, safe='')}&port={self.port}&options={options}"
            )
        return f"postgresql+psycopg://{auth}@{self.host}:{self.port}/{quote(self.database, safe='')}?options={options}"

    def with_database(self, database: str) -> Warehouse:
        return Warehouse(self.host, self.port, self.user, self.password, database, self.embedded)


def start_embedded(data_dir: Path) -> tuple[str, int, str]:
    """Start (or reuse) the embedded PostgreSQL; return its socket dir, port and user."""
    import warnings

    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        import pgserver  # imported here: only the embedded path needs it

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(data_dir, cleanup_mode=None)
    except Exception as exc:  # pgserver raises bare Exceptions with long logs
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise UserError(f"cannot start the embedded PostgreSQL in {data_dir}: {first_line}") from None
    info = server.get_postmaster_info()
    return str(info.socket_dir), int(info.port or 5432), "postgres"


def resolve(config: Config, environ: Mapping[str, str] | None = None) -> Warehouse:
    """The warehouse the environment names, starting the embedded one when PGHOST is unset."""
    env = os.environ if environ is None else environ
    database = config.database
    if env.get("PGHOST"):
        port = env.get("PGPORT") or "5432"
        if not port.isdigit():
            raise UserError(f"PGPORT must be a port number, got {port!r}")
        return Warehouse(
            host=env["PGHOST"],
            port=int(port),
            user=env.get("PGUSER") or "postgres",
            password=env.get("PGPASSWORD", ""),
            database=database,
        )
    host, port, user = start_embedded(config.embedded_dir)
    return Warehouse(host=host, port=port, user=user, password="", database=database, embedded=True)


def ensure_database(warehouse: Warehouse, *, fresh: bool = False) -> None:
    """Create the warehouse database if it is missing (drop it first when `fresh`)."""
    with warehouse.connect("postgres", autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (warehouse.database,)).fetchone()
        name = sql.Identifier(warehouse.database)
        if exists and fresh:
            log.info("dropping database %s", warehouse.database)
            conn.execute(sql.SQL("drop database {} with (force)").format(name))
            exists = None
        if not exists:
            log.info("creating database %s", warehouse.database)
            conn.execute(sql.SQL("create database {}").format(name))


def stop_embedded(data_dir: Path, timeout: float = 60.0) -> int | None:
    """Stop the embedded PostgreSQL in `data_dir` and wait until it has exited.

    A fast shutdown (SIGINT: open sessions are ended, the data is checkpointed); returns the
    server's pid, or None when it was not running. Raises UserError if it outlives `timeout`."""
    import signal
    import time

    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:  # a stale pid file: the server is gone already
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        time.sleep(0.1)
    raise UserError(f"the embedded PostgreSQL (pid {pid}) did not stop within {timeout:.0f} s")
