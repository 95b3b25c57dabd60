"""Log each trained model as single-tensor MLflow models, register them, move the aliases.

Registered names: `<prefix>-<model>-<kind>` with kind denoiser / encoder (AE, VAE) or generator /
encoder (GAN). Each new version gets the alias `candidate`; `champion` moves when the gate passes
(see gate.py), for all of a model's names together. Registering again the same weights, trained
from the same params, data and commit, reuses the version (MLflow itself would add a new one).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unsupervised_mnist.config import Params
from unsupervised_mnist.io import sha256_file
from unsupervised_mnist.tracking.connection import connect, is_enabled
from unsupervised_mnist.tracking.exports import single_tensor_modules
from unsupervised_mnist.tracking.gate import decide
from unsupervised_mnist.tracking.runs import git_state, training_run

CANDIDATE, CHAMPION = "candidate", "champion"
EXAMPLE_SIZE = 4  # > 1, so that torch.export keeps the batch dimension dynamic


@dataclass(frozen=True)
class ModelToRegister:
    name: str  # ae, vae or gan
    model: torch.nn.Module
    checkpoint: Path
    metrics: dict[str, float]  # its metrics/eval/<name>.json
    images: np.ndarray  # a few noisy test images, float32 (n, 1, 28, 28): the input example


def registered_name(params: Params, model: str, kind: str) -> str:
    return f"{params.mlflow.model_prefix}-{model}-{kind}"


def data_checksum(prepared_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(prepared_dir.glob("*.npz")):
        digest.update(f"{path.name}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()[:16]


def identity(params: Params, item: ModelToRegister, shared: dict[str, str]) -> dict[str, str]:
    """What makes a version the same version: params, data and code (`shared` by every model of the
    stage), and the weights themselves."""
    return {
        "params_hash": params.section_hash("seed", "latent_dim", "data", "noise", "train", item.name),
        **shared,
        "model_sha256": sha256_file(item.checkpoint)[:16],
    }


def pip_requirements() -> list[str]:
    """Explicit, so MLflow skips inferring them (seconds per model); the pt2 format needs only these."""
    import mlflow

    return [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"]


def _example(kind: str, item: ModelToRegister, latent_dim: int) -> np.ndarray:
    if kind == "generator":
        generator = torch.Generator().manual_seed(0)
        return torch.randn((EXAMPLE_SIZE, latent_dim), generator=generator).numpy()
    return np.ascontiguousarray(item.images[:EXAMPLE_SIZE], dtype=np.float32)


def _log_version(client: Any, run_id: str, reg_name: str, kind: str, module: torch.nn.Module,
                 example: np.ndarray, tags: dict[str, str]) -> Any:
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    with torch.no_grad():
        output = module(torch.from_numpy(example)).numpy()
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *example.shape[1:]))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *output.shape[1:]))]),
    )
    with mlflow.start_run(run_id=run_id):
        # pt2 (torch.export): loading runs no pickled code and needs neither this package nor its classes.
        info = mlflow.pytorch.log_model(module, name=kind, signature=signature, input_example=example,
                                        pip_requirements=pip_requirements(), serialization_format="pt2")
    version = mlflow.register_model(info.model_uri, reg_name, tags=tags)
    client.set_model_version_tag(reg_name, version.version, "run_id", run_id)
    return version


def _find_version(client: Any, reg_name: str, wanted: dict[str, str]) -> Any | None:
    for version in client.search_model_versions(f"name='{reg_name}'"):
        if all(version.tags.get(key) == value for key, value in wanted.items()):
            return version
    return None


def _champion(client: Any, reg_name: str, metric: str) -> tuple[str | None, float | None]:
    """The champion's version and its value of `metric` (from its run if the gate's metric changed)."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(reg_name, CHAMPION)
    except MlflowException:
        return None, None
    number = str(version.version)  # some stores answer with an int, others with a str
    if version.tags.get("gate_metric") == metric:
        return number, float(version.tags["gate_value"])
    try:
        value = client.get_run(version.tags.get("run_id", "")).data.metrics.get(metric)
    except MlflowException:
        value = None
    return number, value


def register_models(params: Params, items: list[ModelToRegister], prepared_dir: Path) -> dict[str, dict[str, Any]]:
    """Register every model (one connection; data and commit hashed once); name -> its decision."""
    if not is_enabled(params):
        return {item.name: _report(params, item) | {"promoted": False, "reason": "MLflow tracking is off "
                                                    "(mlflow.enabled or UMNIST_MLFLOW)"} for item in items}
    client, experiment_id = connect(params)
    shared = {"data_checksum": data_checksum(prepared_dir), "git_commit": git_state()[0]}
    return {item.name: register_model(params, item, client, experiment_id, identity(params, item, shared))
            for item in items}


def _report(params: Params, item: ModelToRegister) -> dict[str, Any]:
    metric = getattr(params.register, item.name).metric
    return {"metric": metric, "value": item.metrics[metric]}


def register_model(params: Params, item: ModelToRegister, client: Any, experiment_id: str,
                   wanted: dict[str, str]) -> dict[str, Any]:
    """Register `item` (or reuse its version), set `candidate`, and move `champion` if the gate passes."""
    gate = getattr(params.register, item.name)
    report = _report(params, item)
    value = report["value"]
    gate_tags = {"gate_metric": gate.metric, "gate_value": repr(float(value)) if math.isfinite(value) else "nan"}
    modules = single_tensor_modules(item.model)
    versions, run_id = {}, None
    for kind, module in modules.items():
        reg_name = registered_name(params, item.name, kind)
        version = _find_version(client, reg_name, wanted)
        if version is None:
            run_id = run_id or training_run(params, item.name, client, experiment_id, "register")
            example = _example(kind, item, params.latent_dim)
            version = _log_version(client, run_id, reg_name, kind, module, example, {**wanted, **gate_tags})
            print(f"register {item.name}: {reg_name} version {version.version}")
        else:
            print(f"register {item.name}: {reg_name} version {version.version} already holds these weights")
        client.set_registered_model_alias(reg_name, CANDIDATE, version.version)
        versions[kind] = (reg_name, str(version.version))

    primary_name, primary_version = next(iter(versions.values()))
    champion_version, champion_value = _champion(client, primary_name, gate.metric)
    decision = decide(gate, value, champion_value, champion_version, primary_version)
    if decision.promote:
        for reg_name, version in versions.values():
            client.set_registered_model_alias(reg_name, CHAMPION, version)
        champion_version = primary_version
    return {**report, "promoted": decision.promote, "reason": decision.reason,
            "candidate_version": int(primary_version),
            "champion_version": None if champion_version is None else int(champion_version),
            "registered_models": {kind: name for kind, (name, _) in versions.items()}}
