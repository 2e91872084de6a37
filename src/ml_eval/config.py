"""The tool's configuration, resolved once: a flag, else an environment variable, else the default.

Every command builds one `Config` at start-up (`Config.resolve`) and hands it to the code it
calls; no other module reads `ML_EVAL_*` variables. The defaults of the settings dbt shares
(the schemas, the rules both languages apply) are not written here: they are the `vars:` of
the dbt project's `dbt_project.yml`, read from it, and the tool passes the resolved values to
dbt as `--vars`, so dbt and Python always agree.

| setting | flag | environment | default |
| --- | --- | --- | --- |
| project_dir | `--project-dir` | `ML_EVAL_PROJECT_DIR` | the current directory |
| database | `--database` | `PGDATABASE` | `ml_eval` |
| mlflow_schema | | `ML_EVAL_MLFLOW_SCHEMA` | var `mlflow_schema` |
| dataset_schema | | `ML_EVAL_DATASET_SCHEMA` | var `dataset_schema` |
| seed_schema | | `ML_EVAL_SEED_SCHEMA` | var `seed_schema` |
| published_schema | | `ML_EVAL_PUBLISHED_SCHEMA` | var `published_schema` |
| experiment | `--experiment` | `ML_EVAL_EXPERIMENT` | `wine-classification` |
| registered_model | `--registered-model` | `ML_EVAL_REGISTERED_MODEL` | `wine-classifier` |
| mlflow_uri | `sync-mlflow --from` | `ML_EVAL_MLFLOW_URI` | none: MLflow's store is the warehouse |
| mlflow_password | | `ML_EVAL_MLFLOW_PASSWORD` | the URI's, else none |
| mlflow_password_file | `sync-mlflow --password-file` | `ML_EVAL_MLFLOW_PASSWORD_FILE` | none |

With mlflow_uri set, `train` has MLflow write there and then syncs; `build`, `log_predictions`
and `load-predictions` sync first (`ml_eval.mlflow_sync`).

The connection itself (PGHOST, PGPORT, PGUSER, PGPASSWORD) is libpq's, read by
`ml_eval.warehouse` and by dbt's profiles.yml alike.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from ml_eval.errors import UserError

PACKAGE_NAME = "ml_eval"  # the dbt project's name, as a root project's packages.yml installs it
DEFAULT_DATABASE = "ml_eval"
DEFAULT_EXPERIMENT = "wine-classification"
DEFAULT_REGISTERED_MODEL = "wine-classifier"

# The names the tool puts into SQL, MLflow's URL and dbt's relations: refused up front, before
# anything is created, unless they need no quoting anywhere. A database may also hold
# capitals, $ and - (quoted as identifiers, percent-encoded in the URL); a schema is folded
# to lower case by MLflow's `search_path` option, so it must already be lower case.
DATABASE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_$-]*")
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_$]*")
MAX_NAME_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1: longer names are truncated


def check_name(kind: str, name: str, where: str) -> str:
    """`name` if it is a database (`kind` "database") or schema name the tool accepts, else UserError."""
    pattern, allowed = (
        (DATABASE_NAME, "letters, digits, _, $ and - ($ and - not first)")
        if kind == "database"
        else (SCHEMA_NAME, "lower-case letters, digits, _ and $ (no digit or $ first)")
    )
    if not pattern.fullmatch(name) or len(name.encode()) > MAX_NAME_BYTES:
        raise UserError(
            f"{kind} name {name!r} (from {where}) is refused before anything is created:"
            f" use at most {MAX_NAME_BYTES} bytes of {allowed}"
        )
    return name


# dbt vars the tool resolves and passes on to every dbt invocation: name -> environment variable
DBT_VARS = {
    "mlflow_schema": "ML_EVAL_MLFLOW_SCHEMA",
    "dataset_schema": "ML_EVAL_DATASET_SCHEMA",
    "seed_schema": "ML_EVAL_SEED_SCHEMA",
    "published_schema": "ML_EVAL_PUBLISHED_SCHEMA",
}


def find_project(flag: str | None, environ: Mapping[str, str]) -> Path:
    """The dbt project the tool works on: the flag, else ML_EVAL_PROJECT_DIR, else the current directory."""
    given = flag or environ.get("ML_EVAL_PROJECT_DIR")
    directory = Path(given).expanduser() if given else Path.cwd()
    if not (directory / "dbt_project.yml").is_file():
        where = "--project-dir" if flag else "ML_EVAL_PROJECT_DIR" if given else "the current directory"
        raise UserError(
            f"no dbt project in {directory} ({where} has no dbt_project.yml): run ml-eval from the project's"
            " directory, or pass --project-dir or set ML_EVAL_PROJECT_DIR"
        )
    return directory.resolve()


def _yaml(path: Path) -> dict[str, Any]:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None


def _own_vars(document: dict[str, Any], scope: str) -> dict[str, Any]:
    """A dbt_project.yml's vars for `scope`: its global vars, overridden by those under `scope:`."""
    declared = dict(document.get("vars") or {})
    scoped = declared.pop(scope, None)
    return {**declared, **(scoped if isinstance(scoped, dict) else {})}


def project_vars(project_dir: Path) -> dict[str, Any]:
    """The `vars:` of the ml_eval dbt project as dbt resolves them for it.

    `project_dir` is the ml_eval project itself, or a root project that installed it
    (dbt_packages/ml_eval, after `dbt deps`): then the package's defaults, overridden by the
    root's global vars and its `vars: ml_eval:`, as dbt does."""
    document = _yaml(project_dir / "dbt_project.yml")
    if document.get("name") == PACKAGE_NAME:
        return _own_vars(document, PACKAGE_NAME)
    package = project_dir / "dbt_packages" / PACKAGE_NAME / "dbt_project.yml"
    if package.is_file() and _yaml(package).get("name") == PACKAGE_NAME:
        return {**_own_vars(_yaml(package), PACKAGE_NAME), **_own_vars(document, PACKAGE_NAME)}
    raise UserError(
        f"{project_dir} is neither the ml_eval dbt project nor a project with it installed"
        " (run `dbt deps` in a root project that lists it in packages.yml)"
    )


@dataclass(frozen=True)
class Config:
    """Everything a command needs to know, resolved once."""

    project_dir: Path
    database: str
    mlflow_schema: str
    dataset_schema: str
    seed_schema: str
    published_schema: str
    experiment: str = DEFAULT_EXPERIMENT
    registered_model: str = DEFAULT_REGISTERED_MODEL
    # MLflow's own backend store, when it is not the warehouse (`ml-eval sync-mlflow` copies it)
    mlflow_uri: str | None = field(default=None, repr=False)
    mlflow_password: str | None = field(default=None, repr=False)
    mlflow_password_file: str | None = None
    vars: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def resolve(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        project_dir: str | Path | None = None,
        database: str | None = None,
        experiment: str | None = None,
        registered_model: str | None = None,
    ) -> Config:
        """Flags (the keyword arguments) first, then the environment, then the project's defaults."""
        env = os.environ if environ is None else environ
        directory = find_project(str(project_dir) if project_dir else None, env)
        declared = project_vars(directory)
        schemas = {}
        for name, variable in DBT_VARS.items():
            value = env.get(variable) or declared.get(name)
            if not value:
                raise UserError(f"dbt var {name} has no default in {directory / 'dbt_project.yml'}")
            where = variable if env.get(variable) else f"var {name} of {directory / 'dbt_project.yml'}"
            schemas[name] = check_name("schema", str(value), where)
        where = "--database" if database else "PGDATABASE" if env.get("PGDATABASE") else "the default"
        return cls(
            project_dir=directory,
            database=check_name("database", database or env.get("PGDATABASE") or DEFAULT_DATABASE, where),
            experiment=experiment or env.get("ML_EVAL_EXPERIMENT") or DEFAULT_EXPERIMENT,
            registered_model=registered_model or env.get("ML_EVAL_REGISTERED_MODEL") or DEFAULT_REGISTERED_MODEL,
            mlflow_uri=env.get("ML_EVAL_MLFLOW_URI") or None,
            mlflow_password=env.get("ML_EVAL_MLFLOW_PASSWORD") or None,
            mlflow_password_file=env.get("ML_EVAL_MLFLOW_PASSWORD_FILE") or None,
            vars=MappingProxyType({**declared, **schemas}),
            **schemas,
        )

    def with_database(self, database: str) -> Config:
        return replace(self, database=check_name("database", database, "the caller"))

    def dbt_vars(self) -> dict[str, str]:
        """The vars every dbt invocation of the tool is given."""
        return {name: getattr(self, name) for name in DBT_VARS}

    def var(self, name: str) -> Any:
        """A var of the dbt project (a rule SQL and Python share), as declared there."""
        if name not in self.vars:
            raise UserError(f"dbt var {name} is not declared in {self.project_dir / 'dbt_project.yml'}")
        return self.vars[name]

    @property
    def package_dir(self) -> Path:
        """The ml_eval dbt project's own files: the project, or the package a root project installed."""
        installed = self.project_dir / "dbt_packages" / PACKAGE_NAME
        own = _yaml(self.project_dir / "dbt_project.yml").get("name") == PACKAGE_NAME
        return self.project_dir if own or not installed.is_dir() else installed

    # where the tool keeps its local state, inside the project (git-ignored)
    @property
    def local_dir(self) -> Path:
        return self.project_dir / ".local"

    @property
    def embedded_dir(self) -> Path:
        return self.local_dir / "pgdata"

    @property
    def artifacts_dir(self) -> Path:
        return self.local_dir / "mlartifacts"

    @property
    def target_dir(self) -> Path:
        """dbt's target directory: DBT_TARGET_PATH when set (relative to the project, as dbt
        reads it), else target/ — so the docs, the report and the manifest `ml-eval rules`
        reads are where dbt wrote them."""
        return self.project_dir / (os.environ.get("DBT_TARGET_PATH") or "target")
