"""No code of one role runs as another (issue 14): what the transformer plants is refused, or
never runs when the administrator (the producer, MLflow's writer) uses the warehouse.

A clone of the session's build gets a role set of its own (`RoleNames.with_prefix`). As the
transformer, each plant is tried: functions and an operator that would be a better match for
an unqualified name (`nextval(text)`, `pg_get_serial_sequence(text, text)`, `lower(text)`,
`=`), a `predictions` table, in a schema named after the administrator (first on its default
search path, `"$user", public`), in `public`, the dataset and MLflow schemas and a schema the
transformer owns. Every planted function logs its caller into a table the transformer owns;
after the producer (what `ml-eval train` reads and writes), MLflow, the report, the graph and
`ml-eval roles` ran as the administrator the log must be empty. A seed or a published mart
swapped for a view (whose functions would run as the reader) is refused by its readers.
"""

from __future__ import annotations

import os

import numpy as np
import psycopg
import pytest
from mlflow.tracking import MlflowClient
from psycopg import sql

from conftest import CONFIG, clone_database, drop_database
from ml_eval import roles
from ml_eval import warehouse as wh
from ml_eval.consumers import graph
from ml_eval.consumers.report import data as report_data
from ml_eval.errors import UserError
from ml_eval.producer import predictions as pred
from ml_eval.producer import train

NAMES = roles.RoleNames.with_prefix(f"ml_eval_esc_{os.getpid()}")
OTHER = roles.RoleNames.with_prefix(f"ml_eval_esc2_{os.getpid()}")
LOG = "audit.escalation_log"


def as_role(database: wh.Warehouse, role: str) -> wh.Warehouse:
    variable = {NAMES.transformer: "ML_EVAL_TRANSFORMER_PASSWORD", NAMES.reporter: "ML_EVAL_REPORTER_PASSWORD"}
    password = os.environ.get(variable.get(role, ""), "")
    return wh.Warehouse(database.host, database.port, role, password, database.database, database.embedded)


def _plants(schema: str) -> dict[str, str]:
    """What the transformer tries in `schema`: name -> statement. Each function logs its caller."""
    s = '"' + schema.replace('"', '""') + '"'

    def logged(what: str) -> str:
        return f"insert into {LOG} values (current_user, {schema!r} || '.{what}');"

    return {
        "nextval(text)": f"create function {s}.nextval(text) returns bigint language sql as $$"
        f" {logged('nextval')} select pg_catalog.nextval($1::pg_catalog.regclass) $$",
        "pg_get_serial_sequence(text, text)": f"create function {s}.pg_get_serial_sequence(text, text)"
        f" returns text language sql as $$ {logged('pg_get_serial_sequence')}"
        " select pg_catalog.pg_get_serial_sequence($1, $2) $$",
        "lower(text)": f"create function {s}.lower(text) returns text language sql as $$"
        f" {logged('lower')} select pg_catalog.lower($1) $$",
        "operator =(text, varchar)": f"create function {s}.eq(text, varchar) returns boolean language sql as $$"
        f" {logged('=')} select $1 operator(pg_catalog.=) $2::text $$;"
        f" create operator {s}.= (leftarg = text, rightarg = varchar, function = {s}.eq)",
        "table predictions": f"create table {s}.predictions (prediction_id int)",
    }


def _try(conn: psycopg.Connection, statement: str) -> bool:
    """Run `statement` as the transformer: True if it was created, False if permission was denied
    (or, for the dataset's `predictions`, the producer's table is there already)."""
    try:
        with conn.transaction():
            conn.execute(statement)
        return True
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.DuplicateTable):
        return False


@pytest.fixture(scope="module")
def planted(built: wh.Warehouse, tmp_path_factory):
    keys = ("DBT_TARGET_PATH", "DBT_LOG_PATH", "MLFLOW_SQLALCHEMYSTORE_POOLCLASS")
    saved = {key: os.environ.get(key) for key in keys}
    artifacts = tmp_path_factory.mktemp("escalation")
    os.environ.update(DBT_TARGET_PATH=str(artifacts / "target"), DBT_LOG_PATH=str(artifacts / "logs"))
    os.environ["MLFLOW_SQLALCHEMYSTORE_POOLCLASS"] = "NullPool"  # no pooled connection: clones can go
    admin = clone_database(built, f"{built.database}_esc")
    other = None
    try:
        roles.create_roles(admin, CONFIG, names=NAMES)
        transformer = as_role(admin, NAMES.transformer)
        outcome: dict[tuple[str, str], bool] = {}
        with transformer.connect(autocommit=True) as conn:
            conn.execute(f"create table {LOG} (who text, what text)")
            conn.execute(f"grant insert on {LOG} to public")  # whoever runs a plant can log
            outcome[(admin.user, "schema")] = _try(conn, sql.SQL("create schema {}").format(sql.Identifier(admin.user)))
            schemas = [admin.user] if outcome[(admin.user, "schema")] else []
            schemas += ["public", CONFIG.dataset_schema, CONFIG.seed_schema, CONFIG.mlflow_schema, "staging"]
            for schema in schemas:
                for what, statement in _plants(schema).items():
                    outcome[(schema, what)] = _try(conn, statement)
        other = clone_database(built, f"{built.database}_esc2")
        lines = roles.create_roles(other, CONFIG, names=OTHER)
        yield admin, other, outcome, lines
    finally:
        for database in (admin, other):
            if database is not None:
                drop_database(database)
        with built.connect(autocommit=True) as conn:
            for names in (NAMES, OTHER):
                for role in (names.transformer, names.reporter, names.mlflow_reader):
                    conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def planted_source(admin: wh.Warehouse) -> str:
    """The session's database the clone was made from."""
    return admin.database.removesuffix("_esc")


def _log(admin: wh.Warehouse) -> list[tuple[str, str]]:
    with admin.connect() as conn:
        return conn.execute(f"select who, what from {LOG} order by 1, 2").fetchall()


def test_plants_where_others_look_are_refused(planted):
    admin, _, outcome, _ = planted
    for schema in ("public", CONFIG.mlflow_schema):
        refused = {what for (where, what), made in outcome.items() if where == schema and not made}
        assert refused == set(_plants(schema)), schema
    # the schema named after the administrator, first on its default search path: refused, as
    # `ml-eval roles` gives the transformer no CREATE on the database
    assert outcome[(admin.user, "schema")] is False


def test_what_the_transformer_planted_never_runs_as_the_administrator(planted):
    admin, _, outcome, _ = planted
    assert any(outcome.values())  # something was planted (the staging schemas are its)
    # the producer writes a batch through the tool's connection
    with admin.connect() as conn:
        indexes = [r[0] for r in conn.execute("select sample_index from dataset.targets order by 1 limit 20")]
        with conn.transaction():
            pred.write_batch(conn, "e" * 32, indexes, [1] * len(indexes), np.full((len(indexes), 3), 1 / 3),
                             [1, 2, 3], schema=CONFIG.dataset_schema)  # fmt: skip
        conn.execute(
            "select lower(name), count(*) from dataset.datasets where name = 'x'::varchar group by 1"
        ).fetchall()
    # MLflow writes through its own URL (search_path: its schema)
    url = admin.sqlalchemy_url(CONFIG.mlflow_schema)
    client = MlflowClient(url, url)
    run = client.search_runs(client.search_experiments()[0].experiment_id, max_results=1)
    if run:
        client.set_tag(run[0].info.run_id, "escalation", "checked")
    # the consumers read, `ml-eval roles` runs again, then `ml-eval train` end to end
    report_data.load(admin, CONFIG.published_schema)
    try:
        graph.read_graph(admin, CONFIG.published_schema)
    except UserError:  # the lineage tables are not published: still read as the administrator
        graph.read_graph(admin, "marts")
    roles.create_roles(admin, CONFIG, names=NAMES)
    # what `ml-eval train` reads, through its connection (its writes are write_batch and MLflow's;
    # the whole command is left out: 60 s here)
    with admin.connect(autocommit=True, refuse_views=True) as conn:
        train.read_dataset(conn, CONFIG.seed_schema)
    assert _log(admin) == []


def test_a_whole_training_run_as_the_administrator_runs_nothing_planted(planted):
    """`ml-eval train`'s own path, end to end, as the superuser: read the seeds, fit, write the
    predictions (COPY), log to MLflow and register the model, in the planted database."""
    admin, _, _, _ = planted
    baseline = [candidate for candidate in train.default_candidates() if candidate.family == "baseline"][:1]
    settings = train.Settings.from_config(CONFIG, experiment="escalation", registered_model="escalation")
    result = train.train(admin, settings, baseline, report=lambda line: None)
    assert len(result.runs) == 1
    with admin.connect() as conn:
        written = conn.execute(
            "select count(*) from dataset.predictions where run_uuid = %s", (result.runs[0].run_id,)
        ).fetchone()[0]
    assert written > 0  # it really wrote, through the tables the transformer planted beside
    assert _log(admin) == []


def test_a_seed_or_mart_swapped_for_a_view_is_refused_by_its_readers(planted):
    admin, _, _, _ = planted
    with admin.connect() as conn:
        guarded = conn.execute(
            "select 1 from pg_catalog.pg_settings where name = 'restrict_nonsystem_relation_kind'"
        ).fetchone()
    if not guarded:  # the embedded PostgreSQL 16.2 predates the setting (16.4, 15.8, ...)
        pytest.skip(f"{admin.host}: this server has no restrict_nonsystem_relation_kind")
    with as_role(admin, NAMES.transformer).connect(autocommit=True) as conn:
        conn.execute(
            "create function audit.spy() returns boolean language sql as $$"
            f" insert into {LOG} values (current_user, 'view'); select true $$"
        )
        for schema, table in ((CONFIG.seed_schema, "samples"), (CONFIG.published_schema, "dim_runs")):
            conn.execute(sql.SQL("alter table {} rename to {}").format(
                sql.Identifier(schema, table), sql.Identifier(f"{table}_real")))  # fmt: skip
            conn.execute(sql.SQL("create view {} as select * from {} where audit.spy()").format(
                sql.Identifier(schema, table), sql.Identifier(schema, f"{table}_real")))  # fmt: skip
    with admin.connect(refuse_views=True) as conn, pytest.raises(psycopg.Error, match="non-system view"):
        train.read_dataset(conn, CONFIG.seed_schema)
    with pytest.raises(psycopg.Error, match="non-system view"):
        report_data.load(admin, CONFIG.published_schema)
    assert _log(admin) == []


def test_the_reporter_creates_nothing_and_connects_only_to_its_database(planted):
    admin, other, _, lines = planted
    reporter = as_role(admin, NAMES.reporter)
    with reporter.connect(autocommit=True) as conn:
        for statement in ("create temporary table mine (x int)", "create table published.mine (x int)",
                          "create table public.mine (x int)", "create schema mine"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with pytest.raises(UserError, match="permission denied for database"):
        reporter.connect(other.database)
    # the other databases of the server, which the tool does not change, are named one line each:
    # the session's own database is one (PUBLIC may connect to it), the two with roles are not
    assert sum(line.startswith(f"warning: database {planted_source(admin)} ") for line in lines) == 1
    assert not [line for line in lines if admin.database in line.split()[2:3] or other.database in line.split()[2:3]]


def test_the_producer_refuses_prediction_tables_another_role_planted(warehouse: wh.Warehouse):
    """Before the producer's first run, a role that may create in the dataset schema (the
    transformer loads the seeds there) plants `predictions` with a trigger calling its code:
    the producer, a superuser, refuses to write into a table it does not own."""
    empty = warehouse.with_database(f"{warehouse.database}_planted_tables")
    planter = f"ml_eval_planter_{os.getpid()}"
    wh.ensure_database(empty, fresh=True)
    try:
        with empty.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("create role {} login").format(sql.Identifier(planter)))
            conn.execute("create schema dataset")
            conn.execute(sql.SQL("grant usage, create on schema dataset to {}").format(sql.Identifier(planter)))
        with as_role(empty, planter).connect(autocommit=True) as conn:
            conn.execute("create table dataset.predictions (prediction_id integer primary key)")
            conn.execute(
                "create function dataset.planted() returns trigger language plpgsql as"
                " $$ begin raise exception 'planted code ran as %', current_user; end $$"
            )
            conn.execute(
                "create trigger planted before insert on dataset.predictions"
                " for each row execute function dataset.planted()"
            )
        with empty.connect() as conn, pytest.raises(UserError) as refused:
            pred.ensure_tables(conn, "dataset")
        assert str(refused.value).splitlines() == [str(refused.value)]
        assert f"table dataset.predictions is owned by {planter}, not by {empty.user}" in str(refused.value)
    finally:
        drop_database(empty)
        with warehouse.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(planter)))
