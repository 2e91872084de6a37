"""ml-eval installed as a dbt package in someone else's project.

A minimal root project (`shop`) lists this project in its packages.yml (`local:`), has a
model of its own in a folder named `marts` and a seed of its own whose test fails, and sets
one of the package's vars. One `dbt deps` + `dbt build` against a clone of the session's
built database (MLflow's tables and the predictions are there already) must build the
package, run its hooks on its own nodes only, and leave the root project's nodes alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg import sql

from conftest import PROJECT_DIR, clone_database, drop_database
from ml_eval import warehouse as wh

DBT = Path(sys.executable).parent / "dbt"
PUBLISHED = "shop_published"  # the root sets the package's var published_schema

ROOT_PROJECT = {
    "dbt_project.yml": f"""\
name: shop
version: "1.0.0"
config-version: 2
profile: ml_eval
flags:
  send_anonymous_usage_stats: false
vars:
  ml_eval:
    published_schema: {PUBLISHED}
""",
    "packages.yml": f"""\
packages:
  - local: {PROJECT_DIR}
""",
    # the root's own folder named marts: nothing of it may be published
    "models/marts/shop_orders.sql": "select 1 as order_id\n",
    # the root's own seed, with a failing test: it must not be dropped (quarantined)
    "seeds/shop_codes.csv": "code,label\n1,a\n2,\n",
    "seeds/_seeds.yml": """\
version: 2
seeds:
  - name: shop_codes
    columns:
      - name: label
        data_tests: [not_null]
""",
}


def dbt(root: Path, database: wh.Warehouse, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DBT), *args, "--project-dir", str(root), "--profiles-dir", str(PROJECT_DIR)],
        cwd=root,
        env={**os.environ, **database.env(), "DO_NOT_TRACK": "1", "DBT_SCHEMA": "shop"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def tables(database: wh.Warehouse, schema: str) -> dict[str, int]:
    """Every table or view of `schema`, with its row count."""
    with database.connect() as conn:
        names = [
            row[0]
            for row in conn.execute(
                "select table_name from information_schema.tables where table_schema = %s", (schema,)
            )
        ]
        count = sql.SQL("select count(*) from {}.{}")
        return {
            name: conn.execute(count.format(sql.Identifier(schema), sql.Identifier(name))).fetchone()[0]
            for name in names
        }


@pytest.fixture(scope="module")
def installed(built: wh.Warehouse, tmp_path_factory: pytest.TempPathFactory):
    """The root project, deps installed and built once, with the build's log."""
    database = clone_database(built, built.database + "_package")
    root = tmp_path_factory.mktemp("shop")
    for name, text in ROOT_PROJECT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    deps = dbt(root, database, "deps")
    assert deps.returncode == 0, deps.stdout[-3000:]
    build = dbt(root, database, "build")
    yield database, build
    drop_database(database)


def test_the_package_builds_and_publishes_its_marts_only(installed):
    database, build = installed
    # the root's failing seed test fails the invocation (exit 1), and is the only failure
    assert build.returncode == 1, build.stdout[-3000:]
    assert "ERROR=1 " in build.stdout, build.stdout[-3000:]
    assert "FAIL 1 not_null_shop_codes_label" in build.stdout
    # the package's own hooks ran, with the root's var
    assert "hook: ml_eval.on-run-start.0" in build.stdout
    n_marts = len(list((PROJECT_DIR / "models" / "marts").glob("*/*.sql")))  # every mart of the package
    assert f"published {n_marts} marts to schema {PUBLISHED}" in build.stdout, build.stdout[-3000:]
    marts = tables(database, "marts")
    published = tables(database, PUBLISHED)
    assert set(published) == set(marts) and len(marts) == n_marts
    assert published == marts  # every row
    assert published == tables(database, "published")  # the same rows as the project's own build
    assert published["fct_run_evaluation"] == 8 and published["fct_confusion_matrix"] == 8 * 9
    assert "shop_orders" not in published


def test_the_root_projects_nodes_are_built_and_left_alone(installed):
    database, build = installed
    root_schema = tables(database, "shop")
    assert root_schema == {"shop_orders": 1, "shop_codes": 2}  # built, and the seed not dropped
    assert "quarantined seed" not in build.stdout
