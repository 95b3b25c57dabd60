"""One MLflow run per model per pipeline execution: `train@M` opens it and logs params, tags and the
per-epoch curves; `evaluate@M` adds the test metrics and figures to the same run, found through the
small file `models/M.run.json` that the train stage writes. Baselines (pca, pixels) get a run at
evaluation. Every function is a no-op returning None when tracking is off."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from unsupervised_mnist.config import Params
from unsupervised_mnist.io import read_json, write_json
from unsupervised_mnist.names import MODEL_NAMES
from unsupervised_mnist.tracking.connection import connect, is_enabled, tracking_uri

MAX_BATCH = 1000  # MLflow's log_batch limit on metrics per call


def run_file(name: str, root: Path = Path(".")) -> Path:
    return root / f"models/{name}.run.json"


def flat_params(params: Params) -> dict[str, str]:
    """`ae.lr`-style keys, values as text: every run carries every knob, so the UI can diff them."""
    flat: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}{key}.", value)
        else:
            flat[prefix[:-1]] = str(node)

    walk("", params.to_dict())
    return flat


CODE_PATHS = ("src", "pipeline", "params.yaml", "dvc.yaml")  # what shapes a run; outputs are left out


def git_state() -> tuple[str, bool]:
    """(commit, dirty): dirty when the code or params differ from that commit, an untracked (not
    ignored) file among them included. The pipeline's own outputs (metrics/, reports/) are left out:
    writing them must not make a run look dirty."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS],
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return commit.strip(), bool(status.strip())


def params_hash(params: Params) -> str:
    return params.section_hash(*params.to_dict())


def run_tags(params: Params, stage: str) -> dict[str, str]:
    commit, dirty = git_state()
    return {"git_commit": commit, "git_dirty": str(dirty).lower(), "params_hash": params_hash(params),
            "data_source": params.data.source, "stage": stage}


def _metrics(mlflow_metric: type, values: dict[str, float], step: int) -> list:
    now = int(time.time() * 1000)
    return [mlflow_metric(key, float(value), now, step) for key, value in values.items()]


def _log_metrics(client: Any, run_id: str, metrics: list) -> None:
    for start in range(0, len(metrics), MAX_BATCH):
        client.log_batch(run_id, metrics=metrics[start:start + MAX_BATCH])


def _new_run(client: Any, experiment_id: str, params: Params, name: str, stage: str) -> str:
    from mlflow.entities import Param, RunTag

    run = client.create_run(experiment_id, run_name=name, tags={**run_tags(params, stage), "model": name})
    items = list(flat_params(params).items())
    for start in range(0, len(items), 100):  # log_batch takes at most 100 params per call
        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in items[start:start + 100]])
    client.log_batch(run.info.run_id, tags=[RunTag("mlflow.note.content", f"{stage} of the `{name}` model")])
    return run.info.run_id


# ---------------------------------------------------------------- train@M
def start_training_run(params: Params, name: str) -> str | None:
    """Open the run before training, so a dead server stops the stage before minutes of work."""
    if not is_enabled(params):
        return None
    client, experiment_id = connect(params)
    return _new_run(client, experiment_id, params, name, f"train@{name}")


def finish_training_run(params: Params, run_id: str | None, history: list[dict] | None, artifacts: list[Path],
                        *, failed: bool = False) -> None:
    if run_id is None:
        return
    from mlflow.entities import Metric

    client, _ = connect(params)
    metrics = []
    for row in history or []:
        metrics += _metrics(Metric, {k: v for k, v in row.items() if k != "epoch"}, int(row["epoch"]))
    _log_metrics(client, run_id, metrics)
    for path in artifacts:
        client.log_artifact(run_id, str(path), "train")
    client.set_terminated(run_id, "FAILED" if failed else "FINISHED")


def write_run_file(path: Path, run_id: str | None) -> None:
    """A DVC output of train@M: evaluate@M logs into the run it names (None when tracking is off)."""
    write_json(path, {"run_id": run_id, "tracking_uri": tracking_uri() if run_id else None})


def _known_run(client: Any, path: Path) -> str | None:
    """The run named in `path`, if it exists in this store (the store may have changed since training)."""
    if not path.is_file():
        return None
    run_id = read_json(path).get("run_id")
    if not run_id:
        return None
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    return run_id if run.info.lifecycle_stage == "active" else None


def training_run(params: Params, name: str, client: Any, experiment_id: str, stage: str) -> str:
    """The model's training run, or a fresh run named after it when this store has never seen it."""
    run_id = _known_run(client, run_file(name))
    if run_id is None:
        print(f"mlflow: no run of {run_file(name)} in {tracking_uri()}: logging to a new run named {name!r}")
        run_id = _new_run(client, experiment_id, params, name, stage)
    return run_id


# ---------------------------------------------------------------- evaluate@M
def log_evaluation(params: Params, name: str, metrics: dict[str, float], figures: list[Path]) -> str | None:
    """Test metrics (step 0) and figures into the model's run; baselines get their own run."""
    if not is_enabled(params):
        return None
    from mlflow.entities import Metric

    client, experiment_id = connect(params)
    stage = f"evaluate@{name}"
    if name in MODEL_NAMES:  # a trained model; the baselines (pca, pixels) have no training run
        run_id = training_run(params, name, client, experiment_id, stage)
    else:
        run_id = _new_run(client, experiment_id, params, name, stage)
    _log_metrics(client, run_id, _metrics(Metric, metrics, 0))
    for path in figures:
        client.log_artifact(run_id, str(path), "eval")
    client.set_terminated(run_id, "FINISHED")
    return run_id
