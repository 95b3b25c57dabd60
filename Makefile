# The two set-up commands of the README: `make pipeline` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
# Stage commands in dvc.yaml call `python`: make it the venv's.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: pipeline test install lint clean-venv

pipeline: install  ## create the venv, install, run the whole pipeline (dvc repro)
	dvc repro

test: install  ## run the test suite
	pytest -q

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

lint: install
	ruff check src pipeline tests bench

clean-venv:
	rm -rf $(VENV)
