"""Log each trained model as single-tensor MLflow models, register them, move the aliases.

Registered names: `<prefix>-<model>-<kind>` with kind denoiser / encoder (AE, VAE) or generator /
encoder (GAN). Each new version gets the alias `candidate`. Champions are per task (see task.py):
`champion-<task key>` moves, for all of a model's names together, only when the gate (gate.py) passes
against the champion of that same task. The plain `champion` alias follows one task, the registered
model's home task (tag `champion_task`, set at its first registration: the default pipeline's task on
a fresh store), so it only ever moves after a comparison on that task's test data. Registering again
the same weights, trained from the same params, data and commit, reuses the version (MLflow itself
would add a new one).
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
from unsupervised_mnist.tracking.runs import git_state, log_evaluations, training_run
from unsupervised_mnist.tracking.task import Task

CANDIDATE, CHAMPION = "candidate", "champion"
HOME_TASK_TAG = "champion_task"  # on each registered model: the task that plain `champion` follows
EXAMPLE_SIZE = 4  # > 1, so that torch.export keeps the batch dimension dynamic


@dataclass(frozen=True)
class ModelToRegister:
    name: str  # ae, vae or gan
    model: torch.nn.Module
    checkpoint: Path
    metrics: dict[str, float]  # its reports/eval/<name>.json: every test metric
    images: np.ndarray  # a few noisy test images, float32 (n, 1, 28, 28): the input example
    task: Task  # what its gate metric was measured on


def registered_name(params: Params, model: str, kind: str) -> str:
    return f"{params.mlflow.model_prefix}-{model}-{kind}"


def data_checksum(prepared_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(prepared_dir.glob("*.npz")):
        digest.update(f"{path.name}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()[:16]


def identity(params: Params, item: ModelToRegister, shared: dict[str, str]) -> dict[str, str]:
    """What makes a version the same version: the params that shape the model, data and code (`shared`
    by every model of the stage), and the weights themselves."""
    return {
        "model_params_hash": params.model_hash(item.name),
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
                 example: np.ndarray, tags: dict[str, str]) -> tuple[Any, str]:
    """Log `module` in the pt2 format into the run and register it: (the version, the logged model's id)."""
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
    return version, info.model_id


def _find_version(client: Any, reg_name: str, wanted: dict[str, str]) -> Any | None:
    for version in client.search_model_versions(f"name='{reg_name}'"):
        if all(version.tags.get(key) == value for key, value in wanted.items()):
            return version
    return None


def _alias_version(client: Any, reg_name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(reg_name, alias)
    except MlflowException:
        return None


def _task_champion(client: Any, reg_name: str, task: Task) -> tuple[str | None, float | None]:
    """The champion of `task` and its gate value: measured on that task, so comparable."""
    version = _alias_version(client, reg_name, task.champion_alias)
    if version is None:
        return None, None
    value = version.tags.get("gate_value")
    return str(version.version), None if value is None else float(value)  # some stores answer with an int


def _home_task(client: Any, reg_names: list[str], task: Task) -> str | None:
    """The task plain `champion` follows: the registered model's tag, set at its first registration.
    A store whose `champion` predates task tracking keeps that champion's own task (or none: then
    plain `champion` stays where it is)."""
    tags = client.get_registered_model(reg_names[0]).tags
    if HOME_TASK_TAG in tags:
        return tags[HOME_TASK_TAG]
    legacy = _alias_version(client, reg_names[0], CHAMPION)
    home = task.key if legacy is None else legacy.tags.get("task")
    if home is not None:
        for reg_name in reg_names:
            client.set_registered_model_tag(reg_name, HOME_TASK_TAG, home)
    return home


def register_models(params: Params, items: list[ModelToRegister], prepared_dir: Path,
                    evaluations: dict[str, tuple[dict[str, float], list[Path]]]) -> dict[str, dict[str, Any]]:
    """Log every evaluation, then register every model (one connection; data and commit hashed once);
    name -> its decision."""
    if not is_enabled(params):
        return {item.name: _report(params, item) | {"promoted": False, "reason": "MLflow tracking is off "
                                                    "(mlflow.enabled or UMNIST_MLFLOW)"} for item in items}
    client, experiment_id = connect(params)
    log_evaluations(params, client, experiment_id, evaluations)
    shared = {"data_checksum": data_checksum(prepared_dir), "git_commit": git_state()[0]}
    return {item.name: register_model(params, item, client, experiment_id, identity(params, item, shared))
            for item in items}


def _report(params: Params, item: ModelToRegister) -> dict[str, Any]:
    metric = getattr(params.register, item.name).metric
    return {"metric": metric, "value": item.metrics[metric], "task": item.task.key,
            "task_alias": item.task.champion_alias, "test_set": item.task.identity}


def register_model(params: Params, item: ModelToRegister, client: Any, experiment_id: str,
                   wanted: dict[str, str]) -> dict[str, Any]:
    """Register `item` (or reuse its version), set `candidate`, and move its task's champion, and plain
    `champion` when that is its task, if the gate passes against that task's champion."""
    gate, task = getattr(params.register, item.name), item.task
    report = _report(params, item)
    value = report["value"]
    gate_tags = {"gate_metric": gate.metric, "gate_value": repr(float(value)) if math.isfinite(value) else "nan",
                 "task": task.key, **{f"task.{key}": text for key, text in task.identity.items()}}
    modules = single_tensor_modules(item.model)
    versions, run = {}, None
    # The test metrics also go to each logged model, tied to the test split: the model's page shows them.
    test_digest = item.task.identity["test_split_sha256"]
    scores = {k: v for k, v in item.metrics.items() if "class_share" not in k}
    for kind, module in modules.items():
        reg_name = registered_name(params, item.name, kind)
        version = _find_version(client, reg_name, wanted)
        if version is None:
            run = run or training_run(params, item.name, client, experiment_id, "register")
            example = _example(kind, item, params.latent_dim)
            version, model_id = _log_version(client, run.run_id, reg_name, kind, module, example,
                                             {**wanted, **gate_tags})
            run.log_metrics(scores, 0, model_id=model_id, dataset_name=params.data.source, dataset_digest=test_digest)
            print(f"register {item.name}: {reg_name} version {version.version}")
        else:
            print(f"register {item.name}: {reg_name} version {version.version} already holds these weights")
        client.set_registered_model_alias(reg_name, CANDIDATE, version.version)
        versions[kind] = (reg_name, str(version.version))

    reg_names = [name for name, _ in versions.values()]
    primary_name, primary_version = next(iter(versions.values()))
    home = _home_task(client, reg_names, task)
    champion_version, champion_value = _task_champion(client, primary_name, task)
    compared = None if champion_version in (None, primary_version) else {"version": int(champion_version),
                                                                        "value": champion_value}
    decision = decide(gate, value, champion_value, champion_version, primary_version)
    if decision.promote:
        aliases = [task.champion_alias] + ([CHAMPION] if home == task.key else [])
        for reg_name, version in versions.values():
            for alias in aliases:
                client.set_registered_model_alias(reg_name, alias, version)
        champion_version = primary_version
    plain = _alias_version(client, primary_name, CHAMPION)
    return {**report, "promoted": decision.promote, "reason": f"task {task.key}: {decision.reason}",
            "candidate_version": int(primary_version), "compared_with": compared,
            "champion_version": None if champion_version is None else int(champion_version),
            "champion_alias": {"task": home, "version": None if plain is None else int(plain.version),
                               "same_task": home == task.key},
            "registered_models": {kind: name for kind, (name, _) in versions.items()}}
