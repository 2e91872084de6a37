"""`ml-eval roles`: least-privilege roles for the warehouse, created idempotently.

Three roles (cluster-wide in PostgreSQL, so created once and granted per database):

- `ml_eval_mlflow_reader` (NOLOGIN): usage on MLflow's schema and select on its tables, now
  and later (default privileges of the role that owns MLflow's tables, the producer's);
- `ml_eval_transformer` (LOGIN), the role dbt runs as: member of the reader; owns the schemas
  dbt builds in (staging, intermediate, marts, audit, published: created here, by the
  administrator), loads the seeds into the seed schema, reads the producer's Dataset Database
  tables. It may create no schema (no CREATE on the database), nothing in `public`
  or MLflow's schema, and owns nothing of MLflow's or the producer's, so it cannot insert,
  update, delete, truncate, alter or drop their tables;
- `ml_eval_reporter` (LOGIN), the consumers' role: CONNECT on the database, usage on
  `published` and select on its tables, nothing else. The publish macro grants it the new
  tables after every publish.

CONNECT and TEMP on the database are revoked from PUBLIC (CONNECT granted to the two login
roles and the producer, TEMP to the transformer, whose incremental models use it), as are
CREATE on schema `public` and MLflow's schema from everyone but their owner and the
large-object constructors, so the reporter can write nothing at all. The other databases of
the server are not touched: one line each names those where PUBLIC may still connect or
create temporary tables.

No code of one role runs as another: the schemas on a search path of the tool's are
pg_catalog (psycopg, dbt) or MLflow's own (MLflow), where only their owner creates; see
`warehouse.SAFE_OPTIONS`.

Passwords come only from the environment (ML_EVAL_TRANSFORMER_PASSWORD,
ML_EVAL_REPORTER_PASSWORD) and reach the server as a SCRAM verifier computed by libpq, never
as plain text; unset, the login role has no password (trust or peer authentication). Run as
an administrator (a superuser, e.g. the one MLflow and the producer write as), once per
database; running it again changes nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from ml_eval import warehouse as wh
from ml_eval.config import Config
from ml_eval.errors import UserError

log = logging.getLogger(__name__)

PASSWORD_VARIABLES = {
    "transformer": "ML_EVAL_TRANSFORMER_PASSWORD",
    "reporter": "ML_EVAL_REPORTER_PASSWORD",
}
# The schemas dbt builds in (generate_schema_name uses these names as written), created here,
# owned by the transformer; with the published schema (var published_schema) added.
DBT_SCHEMAS = ("staging", "intermediate", "marts", "audit")


@dataclass(frozen=True)
class RoleNames:
    """The three role names; `with_prefix` makes a separate set (tests use one)."""

    mlflow_reader: str = "ml_eval_mlflow_reader"
    transformer: str = "ml_eval_transformer"
    reporter: str = "ml_eval_reporter"

    @classmethod
    def with_prefix(cls, prefix: str) -> RoleNames:
        return cls(f"{prefix}_mlflow_reader", f"{prefix}_transformer", f"{prefix}_reporter")


def seed_tables(project_dir: Path) -> list[str]:
    """The seed tables dbt loads into the seed schema (one per CSV under seeds/)."""
    return sorted(path.stem for path in (project_dir / "seeds").rglob("*.csv"))


def _ident(*names: str) -> sql.Composable:
    return sql.Identifier(*names)


def _create_role(conn: psycopg.Connection, name: str, login: bool) -> bool:
    """Create the role unless it exists (another database may have made it); True if made."""
    if conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone():
        conn.execute(sql.SQL("alter role {} " + ("login" if login else "nologin")).format(_ident(name)))
        return False
    try:
        with conn.transaction():
            conn.execute(sql.SQL("create role {} " + ("login" if login else "nologin")).format(_ident(name)))
    except psycopg.errors.DuplicateObject:  # created concurrently by another session
        return False
    return True


def _set_password(conn: psycopg.Connection, role: str, password: str) -> None:
    """Store the password as a SCRAM verifier made client-side: the server never sees it."""
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    conn.execute(sql.SQL("alter role {} password {}").format(_ident(role), sql.Literal(verifier.decode())))


def _owners(conn: psycopg.Connection, schema: str) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "select distinct pg_get_userbyid(c.relowner) from pg_class as c"
            " join pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f')",
            (schema,),
        )
    ]


def _hand_over(conn: psycopg.Connection, schema: str, owner: str, tables: list[str] | None = None) -> int:
    """Make `owner` own the schema (tables=None) or the named tables dbt rebuilds; return the count."""
    changed = 0
    if tables is None:
        row = conn.execute(
            "select pg_get_userbyid(nspowner) from pg_namespace where nspname = %s", (schema,)
        ).fetchone()
        if row is None:
            return 0
        if row[0] != owner:
            conn.execute(sql.SQL("alter schema {} owner to {}").format(_ident(schema), _ident(owner)))
            changed += 1
    kinds = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "f": "foreign table"}
    relations = conn.execute(
        "select c.relname, c.relkind from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f')"
        " and pg_get_userbyid(c.relowner) <> %s order by c.relname",
        (schema, owner),
    ).fetchall()
    for name, kind in relations:
        if tables is None or name in tables:
            conn.execute(
                sql.SQL("alter {} {} owner to {}").format(sql.SQL(kinds[kind]), _ident(schema, name), _ident(owner))
            )
            changed += 1
    return changed


def create_roles(
    admin: wh.Warehouse,
    config: Config,
    *,
    names: RoleNames = RoleNames(),
    producer: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Create (or bring up to date) the three roles and their grants in admin's database.

    `admin` connects as an administrator; `producer` is the role MLflow and `ml-eval train`
    write as (default: admin's user), whose future tables in the MLflow and dataset schemas
    the readers get by default privileges. The passwords are read from `environ` (default: the
    process environment), the only setting not in `config`, since it is a secret.
    Returns what was done, one line each, no secret.
    """
    env = os.environ if environ is None else environ
    mlflow_schema, dataset_schema = config.mlflow_schema, config.dataset_schema
    published_schema = config.published_schema
    producer = producer or admin.user
    for attempt in range(3):
        report: list[str] = []
        with admin.connect(autocommit=True) as conn:
            try:
                _roles(conn, names, env, report)
                with conn.transaction():
                    _database_grants(conn, admin.database, names, producer, report)
                    _mlflow_grants(conn, mlflow_schema, names, producer, report)
                    seeds = seed_tables(config.package_dir)
                    _dataset_grants(conn, dataset_schema, config.seed_schema, names, producer, seeds, report)
                    _dbt_schemas(conn, published_schema, names, report)
                _other_databases(conn, report)
                return report
            except psycopg.errors.InsufficientPrivilege as exc:
                raise UserError(
                    f"creating the roles needs an administrator (a superuser): {str(exc).strip().splitlines()[0]}"
                ) from None
            except (psycopg.errors.InternalError_, psycopg.errors.UniqueViolation) as exc:
                # the roles are cluster-wide: another database's `roles` may grant at the same time
                # ("tuple concurrently updated"); everything here is idempotent, so run it again
                if attempt == 2:
                    raise UserError(f"creating the roles failed: {str(exc).strip().splitlines()[0]}") from None
                log.info("creating the roles raced another session (%s); again", type(exc).__name__)
    raise AssertionError("unreachable")


def _roles(conn: psycopg.Connection, names: RoleNames, env: Mapping[str, str], report: list[str]) -> None:
    made = _create_role(conn, names.mlflow_reader, login=False)
    report.append(f"role {names.mlflow_reader} (NOLOGIN): {'created' if made else 'exists'}")
    for kind in ("transformer", "reporter"):
        role, variable = getattr(names, kind), PASSWORD_VARIABLES[kind]
        made = _create_role(conn, role, login=True)
        password = env.get(variable)
        if password:
            _set_password(conn, role, password)
            state = f"{'created' if made else 'exists'}, password set from {variable}"
        elif made:
            state = f"created without a password ({variable} is unset: for trust or peer authentication)"
        else:
            state = f"exists, password unchanged ({variable} is unset)"
        report.append(f"role {role} (LOGIN): {state}")
    conn.execute(sql.SQL("grant {} to {}").format(_ident(names.mlflow_reader), _ident(names.transformer)))


def _only_owner_creates(conn: psycopg.Connection, schema: str) -> list[str]:
    """Revoke CREATE on `schema` from every role but its owner; return whom it was revoked from."""
    grantees = [
        row[0]
        for row in conn.execute(
            "select distinct case when a.grantee = 0 then 'public' else pg_catalog.pg_get_userbyid(a.grantee) end"
            " from pg_catalog.pg_namespace as n, pg_catalog.aclexplode(n.nspacl) as a"
            " where n.nspname = %s and a.privilege_type = 'CREATE' and a.grantee <> n.nspowner order by 1",
            (schema,),
        )
    ]
    for grantee in grantees:
        role = sql.SQL("public") if grantee == "public" else _ident(grantee)
        conn.execute(sql.SQL("revoke create on schema {} from {}").format(_ident(schema), role))
    return grantees


def _database_grants(
    conn: psycopg.Connection,
    database: str,
    names: RoleNames,
    producer: str,
    report: list[str],
) -> None:
    db = _ident(database)
    # only the roles of this database connect to it: not the reporter of another database
    conn.execute(sql.SQL("revoke connect, temporary on database {} from public").format(db))
    connecting = [names.transformer, names.reporter] + ([producer] if producer not in (names.transformer,) else [])
    conn.execute(sql.SQL("grant connect on database {} to {}").format(db, sql.SQL(", ").join(map(_ident, connecting))))
    # temporary tables are for the transformer alone (dbt's incremental models use them); it
    # creates no schema: the administrator creates those dbt builds in (_dbt_schemas)
    conn.execute(sql.SQL("revoke create on database {} from {}").format(db, _ident(names.transformer)))
    conn.execute(sql.SQL("grant temporary on database {} to {}").format(db, _ident(names.transformer)))
    if conn.execute("select 1 from pg_catalog.pg_namespace where nspname = 'public'").fetchone():
        _only_owner_creates(conn, "public")  # PUBLIC had CREATE by default before PostgreSQL 15
    # large objects need no privilege to create: the last thing any role could write
    conn.execute(
        "revoke execute on function pg_catalog.lo_create(oid), pg_catalog.lo_creat(integer),"
        " pg_catalog.lo_from_bytea(oid, bytea) from public"
    )
    report.append(
        f"database {database}: {', '.join(connecting)} may connect; {names.transformer} may create"
        " temporary tables and no schema; PUBLIC may not connect,"
        " nor create a temporary table,"
        " anything in schema public or a large object"
    )


def _other_databases(conn: psycopg.Connection, report: list[str]) -> None:
    """One line for each other database where PUBLIC (so the reporter) may still connect or
    create temporary tables: PostgreSQL's defaults, which this tool does not change there."""
    rows = conn.execute(
        "select datname, pg_catalog.has_database_privilege('public', oid, 'CONNECT'),"
        " pg_catalog.has_database_privilege('public', oid, 'TEMPORARY') from pg_catalog.pg_database"
        " where datallowconn and not datistemplate and datname <> pg_catalog.current_database()"
        " order by datname"
    ).fetchall()
    for name, connect, temporary in rows:
        if connect or temporary:
            allowed = " and ".join(
                word for word, ok in (("connect", connect), ("create temporary tables", temporary)) if ok
            )
            report.append(
                f"warning: database {name} (not changed): every role, the reporter too, may {allowed}"
                f' there; to stop it: revoke connect, temporary on database "{name}" from public'
            )


def _mlflow_grants(conn: psycopg.Connection, schema: str, names: RoleNames, producer: str, report: list[str]) -> None:
    reader = _ident(names.mlflow_reader)
    conn.execute(sql.SQL("create schema if not exists {}").format(_ident(schema)))
    # MLflow's connections have this schema on their search path: only its owner creates in it
    _only_owner_creates(conn, schema)
    conn.execute(sql.SQL("grant usage on schema {} to {}").format(_ident(schema), reader))
    conn.execute(sql.SQL("grant select on all tables in schema {} to {}").format(_ident(schema), reader))
    owners = sorted({producer, *_owners(conn, schema)} - {names.transformer})
    for owner in owners:
        conn.execute(
            sql.SQL("alter default privileges for role {} in schema {} grant select on tables to {}").format(
                _ident(owner), _ident(schema), reader
            )
        )
    report.append(
        f"schema {schema}: {names.mlflow_reader} reads every table, and every future table of " + ", ".join(owners)
    )


def _dataset_grants(
    conn: psycopg.Connection,
    schema: str,
    seed_schema: str,
    names: RoleNames,
    producer: str,
    seeds: list[str],
    report: list[str],
) -> None:
    """The Dataset Database's schema is the producer's, which the transformer reads; the seeds'
    schema is the transformer's (it loads them), which the producer reads to register them."""
    transformer = _ident(names.transformer)
    conn.execute(sql.SQL("create schema if not exists {}").format(_ident(schema)))
    conn.execute(sql.SQL("create schema if not exists {}").format(_ident(seed_schema)))
    conn.execute(sql.SQL("grant usage on schema {} to {}").format(_ident(schema), transformer))
    # grants add up: a database set up when the seeds lived in `dataset` gave CREATE there
    conn.execute(sql.SQL("revoke create on schema {} from {}").format(_ident(schema), transformer))
    conn.execute(sql.SQL("grant select on all tables in schema {} to {}").format(_ident(schema), transformer))
    conn.execute(sql.SQL("grant usage, create on schema {} to {}").format(_ident(seed_schema), transformer))
    if producer != names.transformer:
        conn.execute(sql.SQL("grant usage, create on schema {} to {}").format(_ident(schema), _ident(producer)))
        conn.execute(
            sql.SQL("alter default privileges for role {} in schema {} grant select on tables to {}").format(
                _ident(producer), _ident(schema), transformer
            )
        )
        # the producer registers the seeds the transformer loads
        conn.execute(
            sql.SQL("alter default privileges for role {} in schema {} grant select on tables to {}").format(
                transformer, _ident(seed_schema), _ident(producer)
            )
        )
        conn.execute(sql.SQL("grant usage on schema {} to {}").format(_ident(seed_schema), _ident(producer)))
    moved = _hand_over(conn, seed_schema, names.transformer, seeds)
    if producer != names.transformer:
        for table in seeds:
            if conn.execute(
                "select 1 from pg_tables where schemaname = %s and tablename = %s", (seed_schema, table)
            ).fetchone():
                conn.execute(sql.SQL("grant select on {} to {}").format(_ident(seed_schema, table), _ident(producer)))
    report.append(
        f"schema {seed_schema}: {names.transformer} loads the seeds ({', '.join(seeds)}"
        + (f"; {moved} handed over" if moved else "")
        + f"); schema {schema}: {names.transformer} reads {producer}'s Dataset Database tables"
    )


def _dbt_schemas(conn: psycopg.Connection, published: str, names: RoleNames, report: list[str]) -> None:
    """The schemas dbt builds in, created here for the transformer (which may create no schema);
    those dbt built before the roles existed pass to it, with what is in them."""
    made, moved = [], 0
    for schema in (*DBT_SCHEMAS, published):
        if not conn.execute("select 1 from pg_catalog.pg_namespace where nspname = %s", (schema,)).fetchone():
            conn.execute(sql.SQL("create schema {} authorization {}").format(_ident(schema), _ident(names.transformer)))
            made.append(schema)
        moved += _hand_over(conn, schema, names.transformer)
        _only_owner_creates(conn, schema)
    report.append(
        f"schemas {', '.join((*DBT_SCHEMAS, published))}: owned by {names.transformer}"
        + (f" ({', '.join(made)} created)" if made else "")
        + (f"; handed {moved} existing schemas and relations of dbt's to it" if moved else "")
    )
    conn.execute(sql.SQL("grant usage on schema {} to {}").format(_ident(published), _ident(names.reporter)))
    conn.execute(
        sql.SQL("grant select on all tables in schema {} to {}").format(_ident(published), _ident(names.reporter))
    )
    report.append(f"schema {published}: {names.reporter} reads its tables (granted again after every publish)")
