"""One way to say where the warehouse is: the libpq variables, or the embedded default."""

from __future__ import annotations

import os

import psycopg
import pytest

from conftest import CONFIG, run_ml_eval
from ml_eval import warehouse as wh
from ml_eval.errors import UserError


def test_embedded_postgresql_starts_when_pghost_is_unset():
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    warehouse = wh.resolve(CONFIG, env)
    assert warehouse.embedded
    assert warehouse.host.startswith("/")  # a unix socket directory, no TCP port opened
    wh.ensure_database(warehouse)
    with warehouse.connect() as conn:
        version = conn.execute("show server_version_num").fetchone()[0]
    assert int(version) // 10000 == 16


def test_env_command_prints_variables_that_connect():
    done = run_ml_eval("env")
    exported = dict(line.removeprefix("export ").split("=", 1) for line in done.stdout.splitlines())
    assert set(exported) == {
        *("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"),
        *("MLFLOW_TRACKING_URI", "ML_EVAL_PROJECT_DIR"),
    }
    values = {k: v.strip("'") for k, v in exported.items()}
    with psycopg.connect(
        host=values["PGHOST"], port=values["PGPORT"], user=values["PGUSER"], dbname=values["PGDATABASE"]
    ) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_unreachable_server_is_one_clear_line():
    done = run_ml_eval("env", env={"PGHOST": "127.0.0.1", "PGPORT": "1"}, check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("ml-eval: error: cannot connect to PostgreSQL at 127.0.0.1:1")


def test_bad_port_is_refused():
    with pytest.raises(UserError, match="PGPORT must be a port number"):
        wh.resolve(CONFIG, {"PGHOST": "localhost", "PGPORT": "x"})
