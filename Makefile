# The one way to run things. `make demo` and `make test` set everything up from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ML_EVAL := $(BIN)/ml-eval
export DO_NOT_TRACK := 1

.PHONY: help install demo test lint build train report graph roles bench docs-serve clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

install: $(VENV)/.installed  ## create .venv with the locked dependencies

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

demo: install  ## command 1: the main job on the warehouse (embedded PostgreSQL unless PGHOST is set)
	$(ML_EVAL) demo

test: install  ## command 2: every check: sqlfluff, the main job with dbt build --warn-error into a fresh database, project rules, pytest
	$(ML_EVAL) lint
	$(ML_EVAL) demo --database ml_eval_ci --fresh --warn-error --no-docs
	$(ML_EVAL) rules --database ml_eval_ci
	$(BIN)/python -m pytest

lint: install  ## sqlfluff lint with the dbt templater
	$(ML_EVAL) lint

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

clean:  ## remove the venv, dbt's target/ and the embedded database
	-$(ML_EVAL) stop
	rm -rf $(VENV) target logs .local
