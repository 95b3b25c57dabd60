"""Where runs go: MLFLOW_TRACKING_URI, else a SQLite store at the root of the main workspace.

"Main workspace": `dvc exp run --queue` and `--temp` run the stages in a temporary copy of the
repository under `<workspace>/.dvc/tmp/exps/`, which DVC deletes afterwards; the default store and its
artifacts stay in `<workspace>`, so every kind of run lands in the same place.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from unsupervised_mnist.config import Params
from unsupervised_mnist.errors import UserError

SWITCH_ENV = "UMNIST_MLFLOW"  # "off" turns tracking off whatever params.yaml says
DEFAULT_STORE = "mlflow.db"
DEFAULT_ARTIFACTS = "mlruns"
DVC_TEMP_WORKSPACES = os.path.join(".dvc", "tmp", "exps")
REACHABLE_TIMEOUT_S = 5
# MLflow 3's UI opens an experiment of this kind on its training-runs table, not on the GenAI pages.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


class TrackingError(UserError):
    """The tracking server or store cannot be used."""


def is_enabled(params: Params) -> bool:
    return params.mlflow.enabled and os.environ.get(SWITCH_ENV, "on").lower() not in ("off", "0", "false")


def workspace_root(cwd: Path | None = None) -> Path:
    """The main workspace: the working directory (DVC runs stages from the repository root), or, inside
    one of DVC's temporary experiment copies, the workspace that holds it."""
    cwd = (cwd or Path.cwd()).resolve()
    text = str(cwd)
    marker = os.sep + DVC_TEMP_WORKSPACES + os.sep
    if marker in text + os.sep:
        return Path((text + os.sep).split(marker)[0])
    return cwd


def uses_default_store() -> bool:
    return not os.environ.get("MLFLOW_TRACKING_URI")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workspace_root() / DEFAULT_STORE}"


def _check_reachable(uri: str) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when a server is down."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=REACHABLE_TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return  # it answered: a server is there (some proxies have no /health)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"MLflow tracking server {uri} is unreachable ({reason}); start it, or unset "
                            "MLFLOW_TRACKING_URI for the local sqlite:///mlflow.db, or set UMNIST_MLFLOW=off") from None


def connect(params: Params) -> tuple[Any, str]:
    """An MlflowClient on the tracking URI and the id of the project's experiment (created if new)."""
    try:
        import mlflow
        from mlflow import MlflowClient
    except ImportError:
        raise TrackingError("mlflow is not installed: pip install -e . (or set UMNIST_MLFLOW=off)") from None
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        _check_reachable(uri)
        # MLflow retries for minutes by default; a flaky link still gets a few tries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        client = MlflowClient(uri, uri)
        experiment = client.get_experiment_by_name(params.mlflow.experiment)
    except Exception as exc:  # MLflow raises many types (KeyError, MlflowException, driver errors) here
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrackingError(f"MLFLOW_TRACKING_URI={uri!r}: MLflow cannot use this tracking URI ({detail}); "
                            "use sqlite:///PATH, postgresql+psycopg://..., http(s)://HOST:PORT, or unset it") from None
    if experiment is None:
        # The default store keeps its artifacts beside it, also when the experiment is first created
        # from a temporary experiment copy (MLflow would otherwise resolve ./mlruns in that copy).
        location = (workspace_root() / DEFAULT_ARTIFACTS).as_uri() if uses_default_store() else None
        return client, client.create_experiment(params.mlflow.experiment, artifact_location=location,
                                                tags=dict([EXPERIMENT_KIND]))
    if experiment.lifecycle_stage != "active":
        raise TrackingError(f"MLflow experiment {params.mlflow.experiment!r} at {uri} is deleted: restore it "
                            "or choose another mlflow.experiment in params.yaml")
    if EXPERIMENT_KIND[0] not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, *EXPERIMENT_KIND)
    return client, experiment.experiment_id
