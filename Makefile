# The two set-up commands of the README: `make pipeline` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
# Stage commands in dvc.yaml call `python`: make it the venv's.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: help pipeline test test-fast install lock lint ui serve plots mlflow-server retrain smoke-retrain clean-venv
.DEFAULT_GOAL := help

help:  ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

pipeline: install  ## create the venv, install, run the whole pipeline (dvc repro)
	dvc repro

test: install  ## run the test suite, a worker per core (pytest-xdist)
	pytest -q -n auto --dist loadgroup

test-fast: install  ## the tests that need no whole pipeline run (pytest -m "not slow"): the inner loop
	pytest -q -n auto --dist loadgroup -m "not slow"

install: $(VENV)/.installed  ## create .venv and pip install -e ".[dev,bench]" at exactly the versions of constraints.txt

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,bench]"
	@# numba compiles umap-learn's functions once per installation (about 15 s), not in the first evaluate stage
	$(BIN)/python -c "from unsupervised_mnist.manifold import compile_umap; compile_umap()"
	touch $@

lock:  ## refresh constraints.txt: the newest versions pyproject.toml allows, resolved in a scratch venv
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q -e ".[dev,bench]"
	{ echo "# pip freeze of a fresh install of .[dev,bench] (make lock): make install and CI install exactly these"; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable; } > constraints.txt
	rm -rf .lock-venv

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

# serve and mlflow-server expect `make install` done: no install dependency, so that a copy of the project can
# borrow a venv (make -C copy serve VENV=...).
SERVE_MODEL ?= models:/unsupervised-mnist-ae-denoiser@champion
SERVE_PORT ?= 5001
serve:  ## the champion over REST on 127.0.0.1:SERVE_PORT: POST {"inputs": images} to /invocations (SERVE_MODEL=...)
	MLFLOW_TRACKING_URI="$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}" \
	    mlflow models serve -m "$(SERVE_MODEL)" --env-manager local --host 127.0.0.1 --port $(SERVE_PORT)

# A team's tracking server: PostgreSQL for runs and registry, artifacts proxied by the server (a folder here;
# s3://bucket/prefix with MLFLOW_S3_ENDPOINT_URL for MinIO), MLflow's basic auth: anonymous clients get nothing,
# the admin comes from MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD (never in git), users and
# permissions live in the same database (their own tables). MLFLOW_FLASK_SERVER_SECRET_KEY signs the UI's CSRF
# tokens: set it (the same on every replica) to keep sessions across restarts; unset, each start draws its own.
# See docs/scale-out.md.
MLFLOW_BACKEND ?= postgresql+psycopg://mlflow@127.0.0.1:5432/mlflow
MLFLOW_ARTIFACTS ?= ./mlartifacts
MLFLOW_PORT ?= 5000
MLFLOW_SERVER_OPTS ?=
# Seconds a checked password stays trusted in a worker: without it every request pays a scrypt hash (0.1-0.5 s;
# logging one model asks for each metric's history, hundreds of requests). 0 checks every request.
MLFLOW_AUTH_CACHE_TTL ?= 60
AUTH_INI := $(abspath .mlflow-auth.ini)
mlflow-server:  ## mlflow server on MLFLOW_BACKEND (PostgreSQL) with basic auth, artifacts in MLFLOW_ARTIFACTS
	@test -n "$$MLFLOW_AUTH_ADMIN_USERNAME" && test -n "$$MLFLOW_AUTH_ADMIN_PASSWORD" || { echo "error: set \
	MLFLOW_AUTH_ADMIN_USERNAME and MLFLOW_AUTH_ADMIN_PASSWORD (the server's admin)" >&2; exit 2; }
	@printf '[mlflow]\ndefault_permission = NO_PERMISSIONS\ndatabase_uri = %s\nauthorization_function = %s\nauth_cache_ttl_seconds = %s\n' \
	    "$(MLFLOW_BACKEND)" mlflow.server.auth:authenticate_request_basic_auth $(MLFLOW_AUTH_CACHE_TTL) > $(AUTH_INI)
	MLFLOW_FLASK_SERVER_SECRET_KEY="$${MLFLOW_FLASK_SERVER_SECRET_KEY:-$$(python -c 'import secrets; print(secrets.token_hex(32))')}" \
	MLFLOW_AUTH_CONFIG_PATH=$(AUTH_INI) mlflow server --app-name basic-auth --backend-store-uri "$(MLFLOW_BACKEND)" \
	    --artifacts-destination "$(MLFLOW_ARTIFACTS)" --host 127.0.0.1 --port $(MLFLOW_PORT) $(MLFLOW_SERVER_OPTS)

clean-venv:  ## remove .venv
	rm -rf $(VENV)
