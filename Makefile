# The two set-up commands of the README: `make pipeline` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
# Stage commands in dvc.yaml call `python`: make it the venv's.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: help pipeline test install lint ui plots mlflow-server retrain smoke-retrain clean-venv
.DEFAULT_GOAL := help

help:  ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

pipeline: install  ## create the venv, install, run the whole pipeline (dvc repro)
	dvc repro

test: install  ## run the test suite
	pytest -q

install: $(VENV)/.installed  ## create .venv and pip install -e ".[dev]" (again when pyproject.toml changes)

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@# numba compiles umap-learn's functions once per installation (about 15 s), not in the first evaluate stage
	$(BIN)/python -c "from unsupervised_mnist.manifold import compile_umap; compile_umap()"
	touch $@

lint: install  ## ruff over everything CI lints
	ruff check src pipeline tests bench scripts

# Tiny params for a quick end-to-end run (CI's smoke retrain): the tests' own, from tests/tiny_params.yaml.
SMOKE := $(shell sed -n 's/^\([a-z_.]*\): *\([^ #]*\).*/-S \1=\2/p' tests/tiny_params.yaml)
ARGS ?=

plots:  ## dvc plots show -> dvc_plots/index.html (vega inlined by templates/plots.html: renders offline)
	dvc plots show -o dvc_plots

# retrain and smoke-retrain expect `make install` done (the workflows run it first): no install
# dependency, so that a scratch clone can borrow this venv (make -C clone smoke-retrain VENV=...).
retrain:  ## dvc repro + params/metrics diffs + registry decisions -> reports/retrain.md (ARGS="--base REF -S k=v")
	scripts/retrain $(ARGS)

smoke-retrain:  ## the same on tiny params (edits params.yaml: run it in a scratch clone)
	scripts/retrain $(SMOKE) $(ARGS)

ui: install  ## the MLflow UI over the local store; prints the URL of the runs table (with a shared server, open its URL)
	@python scripts/mlflow_ui_url.py http://127.0.0.1:5000
	mlflow server --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000 --workers 1

# A team's tracking server: PostgreSQL for runs and registry, artifacts proxied by the server
# (a folder here; s3://bucket/prefix with MLFLOW_S3_ENDPOINT_URL for MinIO). See docs/scale-out.md.
MLFLOW_BACKEND ?= postgresql+psycopg://mlflow@127.0.0.1:5432/mlflow
MLFLOW_ARTIFACTS ?= ./mlartifacts
mlflow-server: install  ## mlflow server on MLFLOW_BACKEND (PostgreSQL), artifacts in MLFLOW_ARTIFACTS
	mlflow server --backend-store-uri "$(MLFLOW_BACKEND)" --artifacts-destination "$(MLFLOW_ARTIFACTS)" \
	    --host 127.0.0.1 --port 5000

clean-venv:  ## remove .venv
	rm -rf $(VENV)
