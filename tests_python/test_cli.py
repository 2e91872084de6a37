"""The command line as a contributor and a user meet it: one registry, the project found
explicitly, `exec` and `stop` as documented, and a non-editable install that works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT_DIR, copy_project, run_ml_eval
from ml_eval import cli
from ml_eval import warehouse as wh
from ml_eval.config import Config, project_vars


def test_every_command_is_registered_once_and_parses():
    top = cli.parser()
    required = {
        "exec": ["--", "true"],
        "load-dataset": ["iris", "iris.csv"],
        "load-predictions": ["--run-id", "r", "--dataset", "iris", "p.csv"],
    }
    for name, registered in cli.COMMANDS.items():
        args = top.parse_args([name, *required.get(name, [])])
        assert args.handler is registered.handler
        assert args.project_dir is None and args.database is None  # every command takes both
    assert {"demo", "build", "train", "report", "export-graph", "roles", "bench", "rules", "exec", "stop"} <= set(
        cli.COMMANDS
    )
    assert {"load-dataset", "load-predictions"} <= set(cli.COMMANDS)


def test_the_python_defaults_are_the_dbt_project_vars():
    """The settings dbt and Python share have one default: dbt_project.yml's `vars:`."""
    declared = project_vars(PROJECT_DIR)
    config = Config.resolve({}, project_dir=PROJECT_DIR)
    assert config.dbt_vars() == {
        name: declared[name] for name in ("mlflow_schema", "dataset_schema", "seed_schema", "published_schema")
    }
    assert config.var("champion_alias") == declared["champion_alias"]
    overridden = Config.resolve({"ML_EVAL_PUBLISHED_SCHEMA": "elsewhere"}, project_dir=PROJECT_DIR)
    assert overridden.published_schema == "elsewhere" and overridden.dbt_vars()["published_schema"] == "elsewhere"


def test_outside_a_project_is_one_line(tmp_path: Path):
    done = run_ml_eval("env", cwd=tmp_path, check=False, env={"ML_EVAL_PROJECT_DIR": ""})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"ml-eval: error: no dbt project in {tmp_path} (the current directory has no dbt_project.yml):"
        " run ml-eval from the project's directory, or pass --project-dir or set ML_EVAL_PROJECT_DIR"
    ]
    named = run_ml_eval("env", "--project-dir", str(tmp_path / "nowhere"), check=False)
    assert named.returncode == 2 and "--project-dir has no dbt_project.yml" in named.stderr


def test_the_project_named_is_the_one_used(tmp_path: Path):
    """Another copy of the project, named by --project-dir from elsewhere: its files are read,
    not those of the checkout the tool was installed from."""
    copy = copy_project(tmp_path / "other")
    env = {"DBT_TARGET_PATH": ""}  # the copy's own target/, not this worker's
    done = run_ml_eval("rules", "--no-parse", "--project-dir", str(copy), cwd=tmp_path, check=False, env=env)
    assert done.returncode == 2
    assert f"{copy / 'target' / 'manifest.json'} not found" in done.stderr


def test_exec_runs_the_environments_program_after_the_double_dash(built: wh.Warehouse):
    done = run_ml_eval("exec", "--", "dbt", "--version", env=built.env())
    assert "installed: 1.11." in done.stdout
    query = "select current_database()"
    psql = shutil.which("psql")
    if psql:  # the PG* variables point at the warehouse
        done = run_ml_eval("exec", "--", "psql", "-Atc", query, env=built.env())
        assert done.stdout.strip() == built.database
    missing = run_ml_eval("exec", "--", "no-such-program", env=built.env(), check=False)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == ["ml-eval: error: command not found: no-such-program"]
    empty = run_ml_eval("exec", "--", env=built.env(), check=False)
    assert empty.returncode == 2 and "exec needs a command" in empty.stderr


def test_stop_waits_until_the_embedded_server_has_exited(tmp_path: Path):
    data_dir = tmp_path / "pgdata"
    wh.start_embedded(data_dir)
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    assert wh.stop_embedded(data_dir) == pid
    with pytest.raises(ProcessLookupError):  # gone by the time stop returns
        os.kill(pid, 0)
    assert wh.stop_embedded(data_dir) is None  # not running: nothing to stop


def test_a_non_editable_install_works_from_the_project_directory(built: wh.Warehouse, tmp_path: Path):
    """Installed as a user would (a wheel, not this checkout's source), the tool finds the
    project from the current directory and its report ships its templates."""
    target = tmp_path / "site"
    uv = Path(sys.executable).parent / "uv"
    subprocess.run(
        [str(uv), "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(PROJECT_DIR)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    env = {**os.environ, **built.env(), "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import ml_eval; print(ml_eval.__file__)"], env=env, capture_output=True, text=True
    )
    assert where.stdout.strip().startswith(str(target)), where.stdout  # not the checkout's src/
    out = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "ml_eval", "report", "--out", str(out)],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 10_000 and "<svg" in out.read_text(encoding="utf-8")


def test_a_root_project_sets_the_packages_vars_as_dbt_resolves_them(tmp_path: Path):
    """Run against a root project that installed the package, the tool reads the package's
    defaults, then the root's global vars, then its `vars: ml_eval:` (dbt's precedence)."""
    root = tmp_path / "root"
    (root / "dbt_packages").mkdir(parents=True)
    shutil.copytree(PROJECT_DIR, root / "dbt_packages" / "ml_eval", ignore=shutil.ignore_patterns(".*", "target"))
    (root / "dbt_project.yml").write_text(
        "name: shop\nprofile: ml_eval\n"
        "vars:\n  champion_alias: best\n  ml_eval:\n    published_schema: shop_published\n",
        encoding="utf-8",
    )
    config = Config.resolve({}, project_dir=root)
    assert config.published_schema == "shop_published" and config.var("champion_alias") == "best"
    assert config.mlflow_schema == project_vars(PROJECT_DIR)["mlflow_schema"]  # the package's default
    overridden = Config.resolve({"ML_EVAL_PUBLISHED_SCHEMA": "from_env"}, project_dir=root)
    assert overridden.dbt_vars()["published_schema"] == "from_env"
    assert config.package_dir == root / "dbt_packages" / "ml_eval"  # its seeds, for `roles` and `seeds`
    assert Config.resolve({}, project_dir=PROJECT_DIR).package_dir == PROJECT_DIR
