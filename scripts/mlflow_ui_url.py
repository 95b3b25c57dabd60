"""Print the URL of the project's runs table in the MLflow UI (`make ui` prints it before the server starts).

    python scripts/mlflow_ui_url.py [BASE_URL]   # default http://127.0.0.1:5000

The experiment is `mlflow.experiment` of params.yaml, looked up in MLFLOW_TRACKING_URI or the local
sqlite:///mlflow.db. Before the first `dvc repro` there is no experiment yet: it says so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml


def main(base: str) -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    name = yaml.safe_load(Path("params.yaml").read_text())["mlflow"]["experiment"]
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri is None and Path("mlflow.db").is_file():
        uri = f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    experiment = MlflowClient(uri).get_experiment_by_name(name) if uri else None  # never create a local store
    if experiment is None:
        print(f"MLflow UI: {base} (no experiment {name!r} yet: run `make pipeline` first)")
        return
    print(f"MLflow UI, runs of {name!r}: {base}/#/experiments/{experiment.experiment_id}/runs"
          " (tick runs, then Compare; group by the pipeline_execution tag)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000")
