"""MLflow runs, training-time: where runs go, and one run per model per pipeline execution.

Where: MLFLOW_TRACKING_URI, else a SQLite store at the root of the main workspace, which DVC names in
DVC_ROOT for every stage, also in the temporary copies of `dvc exp run --temp` and `--queue` (outside DVC:
the working directory). `train@M` opens its run before training (a dead server stops the stage in seconds),
logs params, tags, the data it saw and each epoch's metrics as the epoch ends, and ends the run when the
training ends. `register` later logs each evaluation into that run (found through models/M.run.json)
without reopening it; a representation without a training run in this store (the baselines, or any after
a change of store) gets a run of its own, found again on a rerun by its `run_key` tag, so none is doubled.

Tags: MLflow fills its own (git commit, source, user); ours are `git_dirty`, `params_hash`, `data_source`,
`stage`, `model`, `run_key`, `pipeline_execution` (one per `dvc repro` or `dvc exp run`: group by it in the
UI) and `dvc_experiment`. The client API throughout; fluent calls only where MLflow has no other (system
metrics, which sample an active run).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unsupervised_mnist.config import Params
from unsupervised_mnist.errors import UserError
from unsupervised_mnist.io import read_json, write_json
from unsupervised_mnist.tracking.context import dataset_inputs, flat_params, run_key, run_tags

SWITCH_ENV = "UMNIST_MLFLOW"  # "off" turns tracking off whatever params.yaml says
# MLflow 3's UI opens an experiment of this kind on its training-runs table, not on the GenAI pages.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


class TrackingError(UserError):
    """The tracking server or store cannot be used."""


# ---------------------------------------------------------------- the store
def is_enabled(params: Params) -> bool:
    return params.mlflow.enabled and os.environ.get(SWITCH_ENV, "on").lower() not in ("off", "0", "false")


def workspace_root() -> Path:
    """The main workspace: DVC_ROOT under DVC; outside it, the working directory, or the workspace holding the
    temporary experiment copy (`.dvc/tmp/exps/...`) it is in."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"])
    cwd = Path.cwd().resolve()
    parts = cwd.parts
    for i in range(len(parts) - 2):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return cwd


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workspace_root() / 'mlflow.db'}"


def connect(params: Params) -> tuple[Any, str]:
    """An MlflowClient on the tracking URI and the project's experiment id (created if new). A server that does
    not answer fails the first request within seconds: MLflow's own retry and timeout settings, kept short."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        import mlflow
    except ImportError:
        raise TrackingError("mlflow is not installed: pip install -e . (or set UMNIST_MLFLOW=off)") from None
    uri = tracking_uri()
    try:
        mlflow.set_tracking_uri(uri)  # for the fluent calls MLflow has no client form of (log_model)
        mlflow.set_registry_uri(uri)
        client = mlflow.MlflowClient(uri, uri)
        experiment = client.get_experiment_by_name(params.mlflow.experiment)
        if experiment is None:  # the default store keeps its artifacts beside it, whichever copy runs first
            location = (workspace_root() / "mlruns").as_uri() if "MLFLOW_TRACKING_URI" not in os.environ else None
            return client, client.create_experiment(params.mlflow.experiment, location, dict([EXPERIMENT_KIND]))
    except Exception as exc:  # MLflow raises many types here (MlflowException, requests and driver errors)
        raise TrackingError(_unusable(uri, exc)) from None
    if experiment.lifecycle_stage != "active":
        raise TrackingError(f"MLflow experiment {params.mlflow.experiment!r} at {uri} is deleted: restore it "
                            "or choose another mlflow.experiment in params.yaml")
    return client, experiment.experiment_id


def _unusable(uri: str, exc: Exception) -> str:
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    if uri.startswith(("http://", "https://")):
        return (f"MLflow tracking server {uri} is unreachable or refused the request ({detail}); start it, "
                "check MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, or set UMNIST_MLFLOW=off")
    return (f"MLFLOW_TRACKING_URI={uri!r}: MLflow cannot use this tracking URI ({detail}); use sqlite:///PATH, "
            "postgresql+psycopg://..., http(s)://HOST:PORT, or unset it")


# ---------------------------------------------------------------- a run
@dataclass(frozen=True)
class TrackedRun:
    client: Any
    run_id: str

    def log_metrics(self, values: dict[str, float], step: int = 0, **links: str) -> None:
        """Metrics at `step`, stamped now (the UI's wall-time axis is real); `links` (model_id, dataset_name,
        dataset_digest) tie them to a logged model and a dataset."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step, **links) for k, v in values.items()])

    def log_epoch(self, row: dict[str, float]) -> None:
        self.log_metrics({k: v for k, v in row.items() if k != "epoch"}, int(row["epoch"]))


def new_run(client: Any, experiment_id: str, params: Params, name: str, stage: str) -> TrackedRun:
    from mlflow.entities import Param

    run = client.create_run(experiment_id, run_name=name, tags=run_tags(params, name, stage))
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in flat_params(params.to_dict()).items()])
    client.log_inputs(run.info.run_id, datasets=dataset_inputs(params, Path("data/prepared")))
    return TrackedRun(client, run.info.run_id)


def start_training_run(params: Params, name: str) -> TrackedRun | None:
    """Open the run before training, so that a dead server stops the stage before minutes of work."""
    return new_run(*connect(params), params, name, f"train@{name}") if is_enabled(params) else None


@contextlib.contextmanager
def system_metrics(params: Params, run: TrackedRun | None) -> Iterator[None]:
    """With `mlflow.system_metrics: true`, MLflow samples CPU, GPU (nvidia-ml-py, the `gpu` extra) and memory
    into the run while the block runs; its monitor samples the active run, hence the fluent call."""
    if run is None or not params.mlflow.system_metrics:
        yield
        return
    import mlflow

    with mlflow.start_run(run_id=run.run_id, log_system_metrics=True):
        yield


def finish_training_run(run: TrackedRun | None, artifacts: list[Path], timing: dict[str, Any],
                        *, failed: bool = False) -> None:
    """End the run when its training ends: the timing as `timing/*` metrics (wall time varies: a run metric,
    never a DVC metric), where it ran as tags, the artifacts, the status."""
    if run is None:
        return
    from mlflow.entities import RunTag

    run.log_metrics({f"timing/{k}": v for k, v in timing.items() if isinstance(v, int | float)})
    conditions = ("device", "precision", "threads", "processes", "torch")  # what its exact bytes depend on
    run.client.log_batch(run.run_id, tags=[RunTag(k, str(v)) for k, v in timing.items() if k in conditions])
    for path in artifacts:
        run.client.log_artifact(run.run_id, str(path), "train")
    run.client.set_terminated(run.run_id, "FAILED" if failed else "FINISHED")


def run_file(name: str) -> Path:
    return Path(f"models/{name}.run.json")


def write_run_file(path: Path, run: TrackedRun | None) -> None:
    """A DVC output of train@M: `register` logs M's evaluation into the run it names (null: tracking off)."""
    write_json(path, {"run_id": run.run_id if run else None, "tracking_uri": tracking_uri() if run else None})


# ---------------------------------------------------------------- evaluations (logged by `register`)
def find_run(client: Any, experiment_id: str, params: Params, name: str) -> str | None:
    """M's training run if this store has it, else the run a `register` logged before for the same
    representation, params, data and code (its `run_key`)."""
    path = run_file(name)
    run_id = read_json(path).get("run_id") if path.is_file() else None
    if run_id:
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):
            if client.get_run(run_id).info.lifecycle_stage == "active":
                return run_id
    found = client.search_runs([experiment_id], f"tags.run_key = '{run_key(params, name)}'", max_results=1)
    return found[0].info.run_id if found else None


def log_evaluations(params: Params, client: Any, experiment_id: str,
                    evaluations: dict[str, tuple[dict[str, float], list[Path], str]]) -> dict[str, str]:
    """Each representation's test metrics (step 0) and figures, into its run: name -> run id. `evaluations`:
    name -> (metrics, figures, the stage that evaluated it). A training run stays as training left it (its
    duration is the training's); a run made here ends here."""
    run_ids = {}
    for name, (metrics, figures, stage) in evaluations.items():
        run_id = find_run(client, experiment_id, params, name)
        run = TrackedRun(client, run_id) if run_id else new_run(client, experiment_id, params, name, stage)
        run.log_metrics(metrics)
        for path in figures:
            client.log_artifact(run.run_id, str(path), "eval")
        if run_id is None:
            client.set_terminated(run.run_id, "FINISHED")
        run_ids[name] = run.run_id
    return run_ids
