"""Publishing (macros/publish/): what a reader of `published` can rely on, and what is refused.

Every case works on a clone of the session's built database (8 evaluated runs, published),
changes what MLflow holds as a user would (MlflowClient), and runs dbt in-process
(`run_dbt`). A refused publish must leave every published table as it was (checksums) and
say why in one line.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from unittest import mock

import psycopg
import pytest
from mlflow.tracking import MlflowClient
from psycopg import sql

from conftest import CONFIG, clone_database, drop_database
from ml_eval import warehouse as wh
from ml_eval.config import Config
from ml_eval.dbt import run_dbt
from ml_eval.errors import UserError
from ml_eval.producer import predictions as pred

pytestmark = pytest.mark.usefixtures("isolated_environment")

# the marts a reader reads together, and the by-run one
MARTS = ("fct_run_evaluation", "rpt_model_leaderboard", "dim_runs", "fct_class_metrics", "fct_predictions")


@pytest.fixture
def clone(built: wh.Warehouse):
    """A copy of the session's built database for one case, dropped after it (one name for
    every case: dbt's partial parsing is keyed by the connection)."""
    copy = clone_database(built, f"{built.database}_case")
    yield copy
    drop_database(copy)


def checksums(conn: psycopg.Connection, schema: str) -> dict[str, str]:
    """md5 of the rows of every table and view in `schema`, read on `conn` (in its snapshot)."""
    tables = [
        r[0]
        for r in conn.execute(
            "select c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname = %s and c.relkind in ('r', 'v') order by 1",
            (schema,),
        )
    ]
    query = sql.SQL("select md5(string_agg(t::text, ',' order by t::text)) from {} as t")
    return {table: conn.execute(query.format(sql.Identifier(schema, table))).fetchone()[0] for table in tables}


def schema_checksums(database: wh.Warehouse, schema: str) -> dict[str, str]:
    with database.connect() as conn:
        return checksums(conn, schema)


def evaluated_runs(database: wh.Warehouse) -> list[str]:
    with database.connect() as conn:
        return [r[0] for r in conn.execute("select run_uuid from published.fct_run_evaluation order by run_uuid")]


def delete_runs(database: wh.Warehouse, run_uuids: list[str]) -> None:
    """What a user does in MLflow: mark runs deleted."""
    url = database.sqlalchemy_url("mlflow")
    client = MlflowClient(url, url)
    for run_uuid in run_uuids:
        client.delete_run(run_uuid)


def last_publish(database: wh.Warehouse) -> tuple[bool, str, str]:
    """The last row of the publish state: published?, its message, its invocation."""
    with database.connect() as conn:
        return conn.execute(
            "select is_published, message, invocation_id from audit.ml_eval_publishes"
            " order by attempted_at desc limit 1"
        ).fetchone()


@contextmanager
def more_vars(**extra):
    """run_dbt's --vars with these added (publish_force, publish_lock_timeout)."""
    original = Config.dbt_vars
    with mock.patch.object(Config, "dbt_vars", lambda self: {**original(self), **extra}):
        yield


def count_marts(conn: psycopg.Connection) -> tuple[int, ...]:
    """The rows of every mart, in ONE statement (one snapshot, even in READ COMMITTED)."""
    parts = sql.SQL(", ").join(
        sql.SQL("(select count(*) from {})").format(sql.Identifier("published", mart)) for mart in MARTS
    )
    return tuple(conn.execute(sql.SQL("select {}").format(parts)).fetchone())


def test_a_reader_sees_the_whole_old_publish_or_the_whole_new_one(clone: wh.Warehouse):
    """A REPEATABLE READ reader that began before a publish keeps reading the old version of
    every mart, during and after it; statements of other readers meanwhile see the old
    version or the new one, never an empty or partial mart; a new reader sees the new one."""
    before = schema_checksums(clone, "published")
    runs = evaluated_runs(clone)
    with clone.connect() as conn:
        old_counts = count_marts(conn)
    delete_runs(clone, runs[:1])

    reader = clone.connect(autocommit=True)
    reader.execute("begin isolation level repeatable read")
    assert checksums(reader, "published") == before  # the first read takes the snapshot
    seen: set[tuple[int, ...]] = set()
    done = threading.Event()

    def watch() -> None:
        with clone.connect(autocommit=True) as conn:
            while not done.is_set():
                seen.add(count_marts(conn))
                time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run_dbt(["build"], clone)
    finally:
        done.set()
        watcher.join()
    assert checksums(reader, "published") == before  # still the old version, every mart
    reader.execute("rollback")
    reader.close()

    after = schema_checksums(clone, "published")
    assert after == schema_checksums(clone, "marts") and after != before
    assert evaluated_runs(clone) == runs[1:]
    with clone.connect() as conn:
        new_counts = count_marts(conn)
    assert all(count > 0 for count in new_counts)
    assert seen <= {old_counts, new_counts} and old_counts in seen, (seen, old_counts, new_counts)


def test_an_idle_reader_does_not_stall_the_publish_and_consumer_objects_survive(clone: wh.Warehouse):
    """A reader idle in its transaction holds its lock on published.dim_runs: the publish
    (DML only) does not wait for it. A consumer's view on a published table, and the grants
    on both, are kept."""
    consumer = f"{clone.database}_consumer"
    with clone.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(consumer)))
        admin.execute(sql.SQL("create role {}").format(sql.Identifier(consumer)))
    try:
        with clone.connect(autocommit=True) as admin:
            admin.execute(
                "create view published.my_view as select run_uuid, accuracy from published.fct_run_evaluation"
            )
            for table in ("my_view", "fct_run_evaluation"):
                admin.execute(
                    sql.SQL("grant select on {} to {}").format(
                        sql.Identifier("published", table), sql.Identifier(consumer)
                    )
                )
        runs = evaluated_runs(clone)
        delete_runs(clone, runs[:1])
        idle = clone.connect(autocommit=True)
        idle.execute("begin")
        idle.execute("select 1 from published.dim_runs limit 1")
        try:
            started = time.monotonic()
            run_dbt(["build"], clone)
            elapsed = time.monotonic() - started
            with clone.connect() as conn:
                # the hook's own time: from recording the statuses to the publish's commit
                hook_seconds = conn.execute(
                    "select extract(epoch from p.attempted_at - s.recorded_at) from audit.ml_eval_publishes as p"
                    " join audit.ml_eval_node_status as s using (invocation_id)"
                    " order by p.attempted_at desc limit 1"
                ).fetchone()[0]
            assert idle.execute("select count(*) from published.dim_runs").fetchone()[0] > 0  # still open
        finally:
            idle.execute("rollback")
            idle.close()
        print(f"build with an idle reader: {elapsed:.1f} s, publish hook {hook_seconds:.2f} s")
        assert hook_seconds < 10 and elapsed < 300
        assert last_publish(clone)[0]
        assert evaluated_runs(clone) == runs[1:]
        with clone.connect() as conn:
            assert conn.execute("select count(*) from published.my_view").fetchone()[0] == len(runs) - 1
            for table in ("my_view", "fct_run_evaluation"):
                assert conn.execute(
                    "select has_table_privilege(%s, %s, 'select')", (consumer, f"published.{table}")
                ).fetchone()[0]
    finally:
        with clone.connect(autocommit=True) as admin:
            admin.execute("drop view if exists published.my_view")
            admin.execute(
                sql.SQL("revoke all on all tables in schema published from {}").format(sql.Identifier(consumer))
            )
            admin.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(consumer)))


def test_a_lock_held_past_the_bound_refuses_the_publish_in_one_line(clone: wh.Warehouse):
    """A session that locks a published table (ACCESS EXCLUSIVE, as ALTER or VACUUM FULL do)
    holds the publish up for publish_lock_timeout at most; then nothing is published."""
    before = schema_checksums(clone, "published")
    holder = clone.connect(autocommit=True)
    holder.execute("begin")
    holder.execute("lock table published.dim_runs in access exclusive mode")
    try:
        with more_vars(publish_lock_timeout="1s"), pytest.raises(UserError) as refused:
            run_dbt(["run-operation", "publish_marts", "--warn-error"], clone)
    finally:
        holder.execute("rollback")
        holder.close()
    message = str(refused.value)
    assert message == (
        "dbt run-operation failed: not published: published.dim_runs stayed locked by another session"
        " longer than publish_lock_timeout (1s); the published marts in schema published are unchanged"
    )
    assert last_publish(clone)[:2] == (False, message.removeprefix("dbt run-operation failed: "))
    assert schema_checksums(clone, "published") == before


def test_an_empty_or_shrunken_publish_is_refused_unless_forced(clone: wh.Warehouse):
    before = schema_checksums(clone, "published")
    runs = evaluated_runs(clone)
    delete_runs(clone, runs[:6])  # 8 -> 2
    with pytest.raises(UserError) as refused:
        run_dbt(["build", "--warn-error"], clone)
    message = str(refused.value)
    assert "\n" not in message
    assert "not published: evaluated runs would drop from 8 to 2 (publish_max_shrink: 0.5)" in message, message
    assert schema_checksums(clone, "published") == before
    assert not last_publish(clone)[0]
    # the marts were built and passed: forcing publishes them, here without a build
    with more_vars(publish_force=True):
        run_dbt(["run-operation", "publish_marts"], clone)
    assert schema_checksums(clone, "published") == schema_checksums(clone, "marts")
    assert evaluated_runs(clone) == runs[6:]


def test_a_failed_build_completed_by_dbt_retry_is_published(clone: wh.Warehouse):
    """The hook at the end of `dbt retry` sees only the retried nodes; the publish decision
    reads every node's latest status, so the retry publishes."""
    before = schema_checksums(clone, "published")
    runs = evaluated_runs(clone)
    delete_runs(clone, runs[:1])
    unknown = "f" * 32  # predictions of a run MLflow does not know: a source test fails
    with clone.connect() as conn, conn.transaction():
        pred.write_batch(conn, unknown, [0, 1], [1, 2], [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]], [1, 2, 3],
                         schema=CONFIG.dataset_schema)  # fmt: skip
    with pytest.raises(UserError) as failed:
        run_dbt(["build"], clone)
    assert "predictions.run_uuid: relationships" in str(failed.value)
    assert schema_checksums(clone, "published") == before
    with clone.connect() as conn:  # the producer repairs its input (its scores go with it: on delete cascade)
        delete = sql.SQL("delete from {} where run_uuid = %s")
        conn.execute(delete.format(sql.Identifier(CONFIG.dataset_schema, "predictions")), (unknown,))
    run_dbt(["retry"], clone)
    assert schema_checksums(clone, "published") == schema_checksums(clone, "marts")
    assert evaluated_runs(clone) == runs[1:]
    assert last_publish(clone)[0]


def test_a_by_run_mart_without_run_uuid_fails_in_one_line(clone: wh.Warehouse, project_copy):
    models = project_copy / "models" / "marts" / "lineage" / "_lineage__models.yml"
    text = models.read_text()
    models.write_text(text.replace("    config:\n", "    config:\n      meta: {publish: by_run}\n", 1))
    before = schema_checksums(clone, "published")
    with pytest.raises(UserError) as failed:
        run_dbt(["run-operation", "publish_marts"], clone, project_dir=project_copy)
    message = str(failed.value)
    assert "\n" not in message
    assert "mart lineage_nodes is configured meta: {publish: by_run} but has no run_uuid column" in message, message
    assert schema_checksums(clone, "published") == before
