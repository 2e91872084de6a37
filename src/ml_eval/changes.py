"""Change tracking of the Dataset Database: which runs and datasets changed, as versions.

The marts are built run by run and copied to `published` run by run; a run is evaluated again
when what it is made of changed. For the producer's tables that is known here, whoever writes
them (the loaders, `ml-eval train`, or an UPDATE by hand): statement-level AFTER triggers (with
transition tables, so a COPY of a million rows costs one statement, not a million calls) record
a new version of every run and dataset a statement touched:

- `predictions`, `run_datasets` (a row per run) and `prediction_scores` (a row per prediction
  and class, its run found through `predictions.prediction_id`) bump
  `<schema>.run_versions (run_uuid, version)`;
- `samples`, `classes` (a row per dataset) and `targets` (its dataset found through
  `samples.sample_index`) bump `<schema>.dataset_versions (dataset_id, version)`.

A TRUNCATE bumps every run (or dataset) the table could have held. Versions come from one
sequence, `<schema>.change_versions`, so a version never repeats. dbt reads the two tables
(`int_runs_classified.input_fingerprint`) and compares them with what each mart was built from.

The trigger functions belong to the producer (the role that owns the tables) and are SECURITY
DEFINER, so a writer with DML rights on the tables needs none on the versions; their
search_path is `pg_catalog, pg_temp` and every name in them is qualified, so nothing another
role creates in a schema can stand in for what they call. `install` refuses version tables,
a sequence or functions of these names that another role owns (planted by a role that may
create in the dataset schema: the transformer loads seeds there), and
`predictions._refuse_foreign_tables` accepts exactly the triggers installed here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from ml_eval.errors import UserError

log = logging.getLogger(__name__)

SEQUENCE = "change_versions"
RUN_VERSIONS = "run_versions"
DATASET_VERSIONS = "dataset_versions"
TRIGGER_PREFIX = "ml_eval_track_changes"
EVENTS = ("insert", "update", "delete", "truncate")
# pg_trigger.tgtype of a statement-level AFTER trigger on each event: the event's bit
TRIGGER_TYPES = {"insert": 4, "delete": 8, "update": 16, "truncate": 32}
# the transition tables each trigger declares (new, old): the functions read them by name
TRANSITION_TABLES = {
    "insert": ("new_rows", None),
    "update": ("new_rows", "old_rows"),
    "delete": (None, "old_rows"),
    "truncate": (None, None),
}


@dataclass(frozen=True)
class Tracked:
    """A table whose changes bump versions: through which trigger function."""

    table: str
    function: str


# the tables tracked, in the order they are installed; a table that does not exist yet is
# skipped (the dataset tables come with the datasets module, which calls install again)
TRACKED = (
    Tracked("predictions", "ml_eval_bump_runs"),
    Tracked("prediction_scores", "ml_eval_bump_runs_of_scores"),
    Tracked("run_datasets", "ml_eval_bump_runs"),
    Tracked("samples", "ml_eval_bump_datasets"),
    Tracked("classes", "ml_eval_bump_datasets"),
    Tracked("targets", "ml_eval_bump_datasets_of_targets"),
)
FUNCTIONS = tuple(dict.fromkeys(tracked.function for tracked in TRACKED))


def trigger_name(event: str) -> str:
    return f"{TRIGGER_PREFIX}_{event}"


TABLES_DDL = """
create sequence if not exists {schema}.change_versions;
create table if not exists {schema}.run_versions (
    run_uuid varchar(32) primary key,
    version bigint not null
);
create table if not exists {schema}.dataset_versions (
    dataset_id integer primary key,
    version bigint not null
);
comment on table {schema}.run_versions is
    'The latest version of each run''s rows in the producer''s tables (triggers of ml_eval.changes)';
comment on table {schema}.dataset_versions is
    'The latest version of each dataset''s samples, targets and classes (triggers of ml_eval.changes)';
"""

# {schema} quoted identifier, {sequence} the sequence as a string literal ('"dataset".change_versions').
# `changed` holds the ids a statement touched; each gets a new version.
_UPSERT_RUNS = """
insert into {schema}.run_versions as current_version (run_uuid, version)
select changed.run_uuid, pg_catalog.nextval({sequence}::pg_catalog.regclass)
from (select distinct touched.run_uuid from ({touched}) as touched where touched.run_uuid is not null) as changed
on conflict (run_uuid) do update set version = excluded.version"""

_UPSERT_DATASETS = """
insert into {schema}.dataset_versions as current_version (dataset_id, version)
select changed.dataset_id, pg_catalog.nextval({sequence}::pg_catalog.regclass)
from (select distinct touched.dataset_id from ({touched}) as touched where touched.dataset_id is not null) as changed
on conflict (dataset_id) do update set version = excluded.version"""


def _function_bodies(schema: sql.Identifier, sequence: sql.Literal) -> dict[str, str]:
    """The PL/pgSQL body of each trigger function."""

    def runs(touched: str) -> str:
        return _UPSERT_RUNS.format(schema="{schema}", sequence="{sequence}", touched=touched)

    def datasets(touched: str) -> str:
        return _UPSERT_DATASETS.format(schema="{schema}", sequence="{sequence}", touched=touched)

    # a statement's rows: new_rows for insert, old_rows for delete, both for update (a row
    # may move to another run or dataset)
    rows = {
        "INSERT": "select {column} from new_rows",
        "UPDATE": "select {column} from new_rows union all select {column} from old_rows",
        "DELETE": "select {column} from old_rows",
    }
    # scores name their prediction; the prediction's run is looked up in the range of ids the
    # statement touched (a COPY's ids are consecutive), through the primary key
    score_rows = {
        op: (
            "select predictions.run_uuid from {schema}.predictions as predictions"
            " where predictions.prediction_id between (select pg_catalog.min(prediction_id) from ({rows}) as ids)"
            " and (select pg_catalog.max(prediction_id) from ({rows}) as ids)"
            " and predictions.prediction_id in (select prediction_id from ({rows}) as ids)"
        ).replace("{rows}", query.format(column="prediction_id"))
        for op, query in rows.items()
    }
    target_rows = {
        op: (
            "select samples.dataset_id from {schema}.samples as samples"
            " where samples.sample_index in (select sample_index from ({rows}) as indexes)"
        ).replace("{rows}", query.format(column="sample_index"))
        for op, query in rows.items()
    }

    def body(per_op: dict[str, str], truncated: str) -> str:
        branches = "\n".join(
            f"    {'if' if i == 0 else 'elsif'} tg_op = '{op}' then\n        {statement};"
            for i, (op, statement) in enumerate(per_op.items())
        )
        return f"begin\n{branches}\n    else\n        {truncated};\n    end if;\n    return null;\nend"

    every_run = runs(
        "select run_versions.run_uuid from {schema}.run_versions as run_versions"
        " union all select predictions.run_uuid from {schema}.predictions as predictions"
    )
    every_dataset = datasets(
        "select dataset_versions.dataset_id from {schema}.dataset_versions as dataset_versions"
        " union all select samples.dataset_id from {schema}.samples as samples"
    )
    bodies = {
        "ml_eval_bump_runs": body({op: runs(query.format(column="run_uuid")) for op, query in rows.items()}, every_run),
        "ml_eval_bump_runs_of_scores": body({op: runs(query) for op, query in score_rows.items()}, every_run),
        "ml_eval_bump_datasets": body(
            {op: datasets(query.format(column="dataset_id")) for op, query in rows.items()}, every_dataset
        ),
        "ml_eval_bump_datasets_of_targets": body(
            {op: datasets(query) for op, query in target_rows.items()}, every_dataset
        ),
    }
    quoted_schema = schema.as_string(None)
    quoted_sequence = sequence.as_string(None)
    return {
        name: text.replace("{schema}", quoted_schema).replace("{sequence}", quoted_sequence)
        for name, text in bodies.items()
    }


def _owned(conn: psycopg.Connection, schema: str) -> None:
    """Refuse the versions' tables, sequence and functions when another role owns them."""
    rows = conn.execute(
        "select c.relname, pg_catalog.pg_get_userbyid(c.relowner)"
        " from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = any(%s) and c.relowner <> (select oid from pg_catalog.pg_roles"
        " where rolname = current_user)"
        " union all"
        " select p.proname, pg_catalog.pg_get_userbyid(p.proowner)"
        " from pg_catalog.pg_proc as p join pg_catalog.pg_namespace as n on n.oid = p.pronamespace"
        " where n.nspname = %s and p.proname = any(%s) and p.proowner <> (select oid from pg_catalog.pg_roles"
        " where rolname = current_user)",
        (schema, [SEQUENCE, RUN_VERSIONS, DATASET_VERSIONS], schema, list(FUNCTIONS)),
    ).fetchall()
    for name, owner in rows:
        raise UserError(
            f"{schema}.{name} is owned by {owner}, not by {conn.info.user}, who tracks the changes of its tables:"
            f" the producer installs its change tracking only over objects of its own"
        )
    planted = conn.execute(
        "select c.relname from pg_catalog.pg_trigger as t join pg_catalog.pg_class as c on c.oid = t.tgrelid"
        " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = any(%s) and not t.tgisinternal limit 1",
        (schema, [RUN_VERSIONS, DATASET_VERSIONS]),
    ).fetchone()
    if planted:
        raise UserError(f"table {schema}.{planted[0]} has a trigger: the producer writes into no table with one")


def installed_triggers(conn: psycopg.Connection, schema: str) -> set[tuple[str, str]]:
    """(table, trigger) of the triggers `install` made that are in place: statement-level AFTER
    on their event, with their transition tables, on no condition and no column list, calling
    the right function, of the right schema, owned by the connecting role and SECURITY
    DEFINER, enabled ALWAYS (so they also fire under session_replication_role = replica, as in
    logical replication or pg_restore). The dbt side checks the same (macros/change_tracking/change_tracking.sql)
    before it trusts a table's versions for its rows."""
    expected = [
        (t.table, trigger_name(event), TRIGGER_TYPES[event], *TRANSITION_TABLES[event], t.function)
        for t in TRACKED
        for event in EVENTS
    ]
    rows = conn.execute(
        "select c.relname, t.tgname, t.tgtype, t.tgnewtable, t.tgoldtable, p.proname"
        " from pg_catalog.pg_trigger as t"
        " join pg_catalog.pg_class as c on c.oid = t.tgrelid"
        " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " join pg_catalog.pg_proc as p on p.oid = t.tgfoid"
        " join pg_catalog.pg_namespace as pn on pn.oid = p.pronamespace"
        " where n.nspname = %s and pn.nspname = %s and not t.tgisinternal and t.tgenabled = 'A'"
        " and t.tgqual is null and pg_catalog.cardinality(t.tgattr::pg_catalog.int2[]) = 0"
        " and p.proowner = (select oid from pg_catalog.pg_roles where rolname = current_user)"
        " and p.prosecdef",
        (schema, schema),
    ).fetchall()
    present = set(rows)
    return {(row[0], row[1]) for row in expected if row in present}


def untracked(conn: psycopg.Connection, schema: str) -> list[str]:
    """`table.trigger` of every tracking trigger missing or not enabled ALWAYS on the tracked
    tables of `schema` that exist (readable by any role: the build checks it as the transformer)."""
    rows = conn.execute(
        "select c.relname, t.tgname from pg_catalog.pg_class as c"
        " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " join pg_catalog.pg_trigger as t on t.tgrelid = c.oid"
        " where n.nspname = %s and not t.tgisinternal and t.tgenabled = 'A'",
        (schema,),
    ).fetchall()
    tables = conn.execute(
        "select c.relname from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relkind = 'r'",
        (schema,),
    ).fetchall()
    enabled, existing = set(rows), {r[0] for r in tables}
    return [
        f"{t.table}.{trigger_name(event)}"
        for t in TRACKED
        if t.table in existing
        for event in EVENTS
        if (t.table, trigger_name(event)) not in enabled
    ]


def is_tracking_trigger(table: str, trigger: str, function: str) -> bool:
    """Whether (table, trigger name, function name) is one `install` makes."""
    return any(
        t.table == table and t.function == function and trigger == trigger_name(event)
        for t in TRACKED
        for event in EVENTS
    )


def install(conn: psycopg.Connection, schema: str, tables: Sequence[str] | None = None) -> list[str]:
    """Install the change tracking over the tracked tables of `schema` (`tables`, default every
    tracked table) that exist, and the versions' tables; return the tables it tracks.

    Idempotent: nothing is changed when everything is in place already (two catalog queries),
    since the DDL needs the tables' owner and takes their locks. A tracked table another role
    owns is refused. Runs in the caller's transaction (a savepoint), or its own."""
    wanted = [t.table for t in TRACKED] if tables is None else list(tables)
    unknown = sorted(set(wanted) - {t.table for t in TRACKED})
    if unknown:
        raise ValueError(f"not a tracked table: {', '.join(unknown)}")
    existing = {
        row[0]: row[1]
        for row in conn.execute(
            "select c.relname, pg_catalog.pg_get_userbyid(c.relowner) = current_user"
            " from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname = %s and c.relname = any(%s) and c.relkind in ('r', 'p')",
            (schema, wanted),
        )
    }
    for table, is_own in existing.items():
        if not is_own:
            raise UserError(
                f"table {schema}.{table} is not owned by {conn.info.user}: the producer tracks the changes"
                " of its own tables only (an administrator may change its owner)"
            )
    tracked = [t for t in TRACKED if t.table in existing]
    have = installed_triggers(conn, schema)
    complete = all((t.table, trigger_name(event)) in have for t in tracked for event in EVENTS)
    versions_exist = conn.execute(
        "select to_regclass(%s) is not null and to_regclass(%s) is not null and to_regclass(%s) is not null",
        [sql.Identifier(schema, name).as_string(conn) for name in (SEQUENCE, RUN_VERSIONS, DATASET_VERSIONS)],
    ).fetchone()[0]
    name = sql.Identifier(schema)
    bodies = _function_bodies(name, sql.Literal(sql.Identifier(schema, SEQUENCE).as_string(conn)))
    current = dict(
        conn.execute(
            "select p.proname, p.prosrc from pg_catalog.pg_proc as p"
            " join pg_catalog.pg_namespace as n on n.oid = p.pronamespace where n.nspname = %s and p.proname = any(%s)",
            (schema, list(bodies)),
        ).fetchall()
    )
    if complete and versions_exist and current == bodies:
        return [t.table for t in tracked]
    _owned(conn, schema)
    with conn.transaction():
        conn.execute(sql.SQL(TABLES_DDL).format(schema=name))
        for function, body in bodies.items():
            conn.execute(
                sql.SQL(
                    "create or replace function {}() returns trigger language plpgsql security definer"
                    " set search_path = pg_catalog, pg_temp as {}"
                ).format(sql.Identifier(schema, function), sql.Literal(body))
            )
            # nobody but the triggers calls them
            conn.execute(sql.SQL("revoke all on function {}() from public").format(sql.Identifier(schema, function)))
        for t in tracked:
            table = sql.Identifier(schema, t.table)
            for event in EVENTS:
                trigger = sql.Identifier(trigger_name(event))
                if (t.table, trigger_name(event)) in have:
                    continue
                conn.execute(sql.SQL("drop trigger if exists {} on {}").format(trigger, table))
                new, old = TRANSITION_TABLES[event]
                transition = [f"old table as {old}"] * bool(old) + [f"new table as {new}"] * bool(new)
                referencing = " ".join(["referencing", *transition]) if transition else ""
                conn.execute(
                    sql.SQL("create trigger {} after {} on {} {} for each statement execute function {}()").format(
                        trigger,
                        sql.SQL(event),
                        table,
                        sql.SQL(referencing),
                        sql.Identifier(schema, t.function),
                    )
                )
                conn.execute(sql.SQL("alter table {} enable always trigger {}").format(table, trigger))
        # rows written before the tracking was installed get a first version
        if "predictions" in existing:
            conn.execute(
                sql.SQL(
                    "insert into {s}.run_versions (run_uuid, version)"
                    " select run_uuid, pg_catalog.nextval({seq}::pg_catalog.regclass)"
                    " from (select distinct run_uuid from {s}.predictions) as present"
                    " on conflict (run_uuid) do nothing"
                ).format(s=name, seq=sql.Literal(sql.Identifier(schema, SEQUENCE).as_string(conn)))
            )
        if "samples" in existing:
            conn.execute(
                sql.SQL(
                    "insert into {s}.dataset_versions (dataset_id, version)"
                    " select dataset_id, pg_catalog.nextval({seq}::pg_catalog.regclass)"
                    " from (select distinct dataset_id from {s}.samples) as present"
                    " on conflict (dataset_id) do nothing"
                ).format(s=name, seq=sql.Literal(sql.Identifier(schema, SEQUENCE).as_string(conn)))
            )
    log.info("change tracking installed on %s", ", ".join(f"{schema}.{t.table}" for t in tracked))
    return [t.table for t in tracked]
