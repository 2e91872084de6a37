# The one way to run things. `make demo` and `make test` set everything up from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TEST_WORKERS ?= 2  # pytest-xdist workers for `make test` (the machines have 2 cores)
ML_EVAL := $(BIN)/ml-eval
export DO_NOT_TRACK := 1

# The locks are resolved against PyPI alone, so their hashes are PyPI's files (uv does not read
# pip.conf, and this machine's local file indexes are not on every machine). The index is written
# into each lock (--emit-index-url), so `uv pip sync` installs from the one the lock was made from.
PYPI_INDEX ?= https://pypi.org/simple
LOCK_FLAGS := --no-config --index-url $(PYPI_INDEX) --emit-index-url --python-version 3.11 \
	--generate-hashes --annotation-style line --custom-compile-command "make lock" --quiet
# The browser the page-rendering tests start: $ML_EVAL_CHROMIUM if set, else `chromium` on PATH.
CHROMIUM ?= $(or $(ML_EVAL_CHROMIUM),chromium)
# The Prometheus server the alerting test starts: $ML_EVAL_PROMETHEUS if set, else Debian's.
PROMETHEUS ?= $(or $(ML_EVAL_PROMETHEUS),/usr/bin/prometheus)

.PHONY: help install lock setup-browser setup-prometheus demo test lint build train report graph roles bench docs-serve mlflow-ui clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

install: $(VENV)/.installed  ## create .venv with exactly requirements-dev.lock (hash-checked) and ml-eval itself

# How the venv is installed, and why:
# 1. Bootstrap: the venv's own pip installs uv from the dev lock, hash-checked (--require-hashes).
# 2. `uv pip sync --require-hashes requirements-dev.lock` makes the venv the lock: it installs what is
#    missing, moves what differs to the locked version, and removes what the lock does not name (a
#    package installed by hand, an old pin). pip has no such mode: `pip install -r` only ever adds.
# 3. sync keeps the seed packages on purpose (setuptools, wheel: venv puts setuptools 65.5 in a 3.11
#    venv); the next step uninstalls every installed package the lock does not name, so the venv is
#    exactly the lock. pip and uv are in the lock themselves, at their locked versions.
# 4. ml-eval itself, editable and --no-deps: its dependencies are the lock's, never re-resolved.
# The stamp depends on both locks and pyproject.toml: a second `make install` does nothing until one
# of them changes (`make -B install` forces a sync).
$(VENV)/.installed: requirements-dev.lock requirements.lock pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip sync --python $(BIN)/python --require-hashes requirements-dev.lock
	$(BIN)/uv pip freeze --python $(BIN)/python | sed -nE 's/^([A-Za-z0-9._-]+)==.*/\1/p' \
		| tr 'A-Z_.' 'a-z--' | sort > $(VENV)/installed.txt
	sed -nE 's/^([A-Za-z0-9._-]+)==.*/\1/p' requirements-dev.lock | tr 'A-Z_.' 'a-z--' | sort > $(VENV)/locked.txt
	comm -23 $(VENV)/installed.txt $(VENV)/locked.txt | xargs -r $(BIN)/uv pip uninstall --python $(BIN)/python
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

$(BIN)/uv:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	awk '/^uv==/{p=1} p&&/^ *#/{exit} p' requirements-dev.lock > $(VENV)/uv-bootstrap.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		--only-binary :all: -r $(VENV)/uv-bootstrap.txt

lock: $(BIN)/uv  ## re-resolve requirements-dev.lock, then requirements.lock within it, from pyproject.toml (current pins kept)
	$(BIN)/uv pip compile $(LOCK_FLAGS) --group dev pyproject.toml -o requirements-dev.lock
	$(BIN)/uv pip compile $(LOCK_FLAGS) pyproject.toml -c requirements-dev.lock -o requirements.lock

# $(call debian_package,PACKAGE,CHECK,WHAT): nothing when CHECK succeeds, else Debian's PACKAGE via
# apt-get, as root (a non-root user is told the command to run), then CHECK again.
define debian_package
	@$(2) && exit 0; \
	if [ "$$(id -u)" -ne 0 ]; then \
		echo "$(1) is missing: as root, run apt-get update && apt-get install -y --no-install-recommends $(1) (or make $(3))" >&2; \
		exit 1; \
	fi; \
	set -x; \
	DEBIAN_FRONTEND=noninteractive apt-get update && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(1) && \
	$(2)
endef

setup-browser:  ## Chromium for the tests that render pages: Debian's package via apt-get (as root) when missing
	$(call debian_package,chromium,command -v $(CHROMIUM) >/dev/null,setup-browser)

setup-prometheus:  ## Prometheus for the alerting test: Debian's package via apt-get (as root) when missing
	$(call debian_package,prometheus,test -x $(PROMETHEUS),setup-prometheus)

demo: install  ## command 1: the main job on the warehouse (embedded PostgreSQL unless PGHOST is set)
	$(ML_EVAL) demo

test: setup-browser setup-prometheus lint  ## command 2: every check: lint, the main job with dbt build --warn-error into a fresh database, project rules, pytest
	$(ML_EVAL) demo --database ml_eval_ci --fresh --warn-error --no-docs
	$(ML_EVAL) rules --database ml_eval_ci
	ML_EVAL_TEST_BUILT_FROM=ml_eval_ci $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder --durations 15

# Every linter runs, then the target fails if any of them did (one run shows everything to fix).
# `ruff format --check` names each file it would change (`ruff format --diff` shows how).
lint: install  ## ruff check and ruff format --check over src/, tests_python/ and examples/, sqlfluff with the dbt templater
	@status=0; \
	echo "ruff check src tests_python examples"; $(BIN)/ruff check src tests_python examples || status=1; \
	echo "ruff format --check src tests_python examples"; $(BIN)/ruff format --check --output-format concise src tests_python examples || status=1; \
	echo "$(ML_EVAL) lint"; $(ML_EVAL) lint || status=1; \
	exit $$status

train: install  ## train the candidate models into MLflow and store their predictions
	$(ML_EVAL) train

build: install  ## dbt build (and docs) over what the warehouse holds
	$(ML_EVAL) build

report: install  ## the HTML evaluation report from the published marts
	$(ML_EVAL) report

bench: install  ## benchmark the marts at 50x178, 1,000x1,000 and 10,000x1,000 predictions (long)
	$(ML_EVAL) bench

roles: install  ## create the least-privilege roles (run as a superuser)
	$(ML_EVAL) roles

graph: install  ## export the ML lineage graph for Neo4j (CSV + Cypher)
	$(ML_EVAL) export-graph

docs-serve: install  ## serve the lineage docs on http://127.0.0.1:8080
	$(ML_EVAL) exec -- $(abspath $(BIN))/dbt docs serve --port 8080 --host 127.0.0.1

mlflow-ui: install  ## MLflow's own UI over the warehouse's MLflow schema (its sync-mlflow copy), read-only, on http://127.0.0.1:5000
	$(ML_EVAL) mlflow-ui --port $(or $(MLFLOW_UI_PORT),5000)

clean:  ## remove the venv, dbt's target/ and the embedded database
	-$(ML_EVAL) stop
	rm -rf $(VENV) target logs .local
