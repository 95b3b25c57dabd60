"""Where runs go: MLFLOW_TRACKING_URI, else a SQLite store at the repository root."""

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
REACHABLE_TIMEOUT_S = 5


class TrackingError(UserError):
    """The tracking server or store cannot be used."""


def is_enabled(params: Params) -> bool:
    return params.mlflow.enabled and os.environ.get(SWITCH_ENV, "on").lower() not in ("off", "0", "false")


def tracking_uri() -> str:
    """Stages run from the repository root (DVC's working directory), so the default store is there."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / DEFAULT_STORE}"


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
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    experiment = client.get_experiment_by_name(params.mlflow.experiment)
    if experiment is None:
        return client, client.create_experiment(params.mlflow.experiment)
    if experiment.lifecycle_stage != "active":
        raise TrackingError(f"MLflow experiment {params.mlflow.experiment!r} at {uri} is deleted: restore it "
                            "or choose another mlflow.experiment in params.yaml")
    return client, experiment.experiment_id
