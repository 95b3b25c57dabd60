"""One MLflow run per model per pipeline execution: `train@M` opens it and logs params, tags, the data
it saw and each epoch's metrics as the epoch ends; `register` adds the test metrics and figures of
`evaluate@M` to the same run, found through the small file `models/M.run.json` that the train stage
writes. Baselines (pca, pixels) get a run of their own there. Nothing is logged when tracking is off.

Tags: MLflow's own context tags (`mlflow.source.git.commit`, `mlflow.source.name`, `mlflow.source.type`,
`mlflow.user`), and ours: `git_dirty`, `params_hash`, `data_source`, `stage`, `model`,
`pipeline_execution` (shared by the runs of one `dvc repro` or `dvc exp run`: group by it in the UI)
and `dvc_experiment` (the experiment's name under `dvc exp run`).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unsupervised_mnist.config import Params
from unsupervised_mnist.io import read_json, sha256_file, write_json
from unsupervised_mnist.names import MODEL_NAMES
from unsupervised_mnist.tracking.connection import connect, is_enabled, tracking_uri

CODE_PATHS = ("src", "pipeline", "params.yaml", "dvc.yaml")  # what shapes a run; outputs are left out
SPLITS = ("train", "val", "test")
RUN_CONDITIONS = ("device", "precision", "threads", "processes", "torch")  # run tags: what its bytes depend on
PIPELINE_ENV = "UMNIST_PIPELINE_RUN"  # set it to group runs yourself (CI: the workflow run's id)


def run_file(name: str) -> Path:
    return Path(f"models/{name}.run.json")


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


def pipeline_execution() -> str:
    """One id for every stage of one `dvc repro` / `dvc exp run`: $UMNIST_PIPELINE_RUN if set, else the
    `dvc` process that runs this stage (its pid and start time; with the experiment's name under
    `dvc exp run`, since a queue worker runs several), else this process alone."""
    if os.environ.get(PIPELINE_ENV):
        return os.environ[PIPELINE_ENV]
    import psutil

    for process in psutil.Process().parents():
        try:
            command = process.cmdline()
        except psutil.Error:
            continue
        if any(Path(part).name == "dvc" for part in command[:2]):
            experiment = os.environ.get("DVC_EXP_NAME")
            return f"{experiment + '@' if experiment else ''}dvc-{process.pid}-{int(process.create_time())}"
    return f"process-{os.getpid()}-{int(time.time())}"


def run_tags(params: Params, name: str, stage: str) -> dict[str, str]:
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_USER

    commit, dirty = git_state()
    tags = {MLFLOW_GIT_COMMIT: commit, MLFLOW_SOURCE_NAME: f"pipeline/{Path(sys.argv[0]).name}",
            MLFLOW_SOURCE_TYPE: "LOCAL", MLFLOW_USER: getpass.getuser(), "git_dirty": str(dirty).lower(),
            "params_hash": params.params_hash(), "data_source": params.data.source, "stage": stage, "model": name,
            "pipeline_execution": pipeline_execution(), "mlflow.note.content": f"{stage} of `{name}`"}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    return tags


def dataset_inputs(params: Params, prepared_dir: Path) -> list:
    """One MLflow dataset per prepared split: named after the data source, digest = the first 16 hex
    digits of the split file's sha256, context train / val / test."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = []
    for split in SPLITS:
        path = prepared_dir / f"{split}.npz"
        if not path.is_file():
            continue
        dataset = Dataset(name=params.data.source, digest=sha256_file(path)[:16], source_type="local",
                          source=json.dumps({"uri": str(path.resolve())}),
                          profile=json.dumps({"split": split, "noise": f"{params.noise.kind} {params.noise.level:g}"}))
        inputs.append(DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, split)]))
    return inputs


@dataclass(frozen=True)
class TrackedRun:
    client: Any
    run_id: str

    def log_metrics(self, values: dict[str, float], step: int, **links: str) -> None:
        """Metrics at `step`, stamped now (so the UI's wall-time axis is real); `links` (model_id,
        dataset_name, dataset_digest) tie them to a logged model and a dataset."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step, **links) for k, v in values.items()])

    def log_epoch(self, row: dict[str, float]) -> None:
        self.log_metrics({k: v for k, v in row.items() if k != "epoch"}, int(row["epoch"]))


def new_run(client: Any, experiment_id: str, params: Params, name: str, stage: str,
            prepared_dir: Path = Path("data/prepared")) -> TrackedRun:
    from mlflow.entities import Param

    run = client.create_run(experiment_id, run_name=name, tags=run_tags(params, name, stage))
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in flat_params(params).items()])
    client.log_inputs(run.info.run_id, datasets=dataset_inputs(params, prepared_dir))
    return TrackedRun(client, run.info.run_id)


# ---------------------------------------------------------------- train@M
def start_training_run(params: Params, name: str) -> TrackedRun | None:
    """Open the run before training, so a dead server stops the stage before minutes of work."""
    if not is_enabled(params):
        return None
    client, experiment_id = connect(params)
    return new_run(client, experiment_id, params, name, f"train@{name}")


@contextlib.contextmanager
def system_metrics(params: Params, run: TrackedRun | None) -> Iterator[None]:
    """With `mlflow.system_metrics: true`, MLflow samples CPU, GPU and memory into the run while the
    block runs (its monitor needs the run active in the fluent API)."""
    if run is None or not params.mlflow.system_metrics:
        yield
        return
    import mlflow

    with mlflow.start_run(run_id=run.run_id, log_system_metrics=True):
        yield


def finish_training_run(run: TrackedRun | None, artifacts: list[Path], timing: dict[str, Any],
                        *, failed: bool = False) -> None:
    """End the run when its training ends: the training's timing as `timing/*` metrics (wall time varies: a run
    metric, never a DVC metric), where it ran as tags (`device`, `precision`, `threads`, `torch`), the artifacts."""
    if run is None:
        return
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    run.client.log_batch(run.run_id, metrics=[Metric(f"timing/{k}", float(v), now, 0) for k, v in timing.items()
                                              if isinstance(v, int | float)],
                         tags=[RunTag(k, str(v)) for k, v in timing.items() if k in RUN_CONDITIONS])
    for path in artifacts:
        if path.is_file():
            run.client.log_artifact(run.run_id, str(path), "train")
    run.client.set_terminated(run.run_id, "FAILED" if failed else "FINISHED")


def write_run_file(path: Path, run: TrackedRun | None) -> None:
    """A DVC output of train@M: evaluate@M logs into the run it names (None when tracking is off)."""
    write_json(path, {"run_id": run.run_id if run else None, "tracking_uri": tracking_uri() if run else None})


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


def training_run(params: Params, name: str, client: Any, experiment_id: str, stage: str) -> TrackedRun:
    """The model's training run, or a fresh run named after it when this store has never seen it."""
    run_id = _known_run(client, run_file(name))
    if run_id is None:
        print(f"mlflow: no run of {run_file(name)} in {tracking_uri()}: logging to a new run named {name!r}")
        return new_run(client, experiment_id, params, name, stage)
    return TrackedRun(client, run_id)


# ---------------------------------------------------------------- evaluations (logged by `register`)
def log_evaluations(params: Params, client: Any, experiment_id: str,
                    evaluations: dict[str, tuple[dict[str, float], list[Path]]]) -> dict[str, str]:
    """Each representation's test metrics (step 0) and figures: a model's into its training run, a
    baseline's (pca, pixels: no training) into a run of its own. One connection for all of them, in the
    `register` stage, rather than one MLflow start-up per evaluate stage. Returns name -> run id."""
    run_ids = {}
    for name, (metrics, figures) in evaluations.items():
        stage = f"evaluate@{name}" if name in MODEL_NAMES else "baselines"
        if name in MODEL_NAMES:
            run = training_run(params, name, client, experiment_id, stage)
        else:
            run = new_run(client, experiment_id, params, name, stage)
        run.log_metrics(metrics, 0)
        for path in figures:
            client.log_artifact(run.run_id, str(path), "eval")
        client.set_terminated(run.run_id, "FINISHED")
        run_ids[name] = run.run_id
    return run_ids
