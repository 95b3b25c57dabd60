"""The model registry, register-time: log each trained model as single-tensor MLflow models into its run,
register them, move the aliases. The runs are found (or made) by runs.log_evaluations first.

Registered names: `<prefix>-<model>-<kind>`, one per single-tensor module the model exports (its `exports()`:
denoiser, encoder, generator).
Each new version gets the alias `candidate`. Champions are per task (task.py): `champion-<task key>` moves,
for all of a model's names together, only when the gate (gate.py) passes against the champion of that same
task. Plain `champion` follows the registered model's home task (tag `champion_task`, set at its first
registration), so it only moves after a comparison on that task's test data. The same weights from the same
params, data and commit reuse their version (MLflow itself would add one).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unsupervised_mnist.config import Params
from unsupervised_mnist.io import sha256_file
from unsupervised_mnist.models.registry import spec
from unsupervised_mnist.tracking.gate import GateRule, decide
from unsupervised_mnist.tracking.runs import TrackedRun
from unsupervised_mnist.tracking.task import Task

CANDIDATE, CHAMPION = "candidate", "champion"
HOME_TASK_TAG = "champion_task"  # on each registered model: the task that plain `champion` follows
EXAMPLE_SIZE = 4  # > 1, so that torch.export keeps the batch dimension dynamic


@dataclass(frozen=True)
class ModelToRegister:
    name: str  # one of params.yaml's models
    model: torch.nn.Module
    checkpoint: Path
    metrics: dict[str, float]  # its reports/eval/<name>.json: every test metric
    images: np.ndarray  # a few noisy test images, float32 (n, 1, 28, 28): the input example
    task: Task  # what its gate metric was measured on
    run_id: str = ""  # its MLflow run (runs.log_evaluations finds or makes it)


def gate_rule(params: Params, name: str) -> GateRule:
    """Model `name`'s gate: the metric its module names, the thresholds params.yaml sets (register.<name>)."""
    gate, thresholds = spec(name).gate, getattr(params.register, name)
    return GateRule(gate.metric, gate.goal, thresholds.min_improvement, thresholds.floor)


def single_tensor_modules(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """kind -> what the model exports (`exports()`), each in eval mode."""
    return {kind: module.eval() for kind, module in model.exports().items()}


def gate_report(params: Params, item: ModelToRegister) -> dict[str, Any]:
    """What the gate of `item` reads, and on which test set."""
    metric = spec(item.name).gate.metric
    return {"metric": metric, "value": item.metrics[metric], "task": item.task.key,
            "task_alias": item.task.champion_alias, "test_set": item.task.identity}


def identity(params: Params, item: ModelToRegister, data_checksum: str, commit: str) -> dict[str, str]:
    """What makes a version the same version: the params that shape it, data, code and the weights."""
    return {"model_params_hash": params.model_hash(item.name), "data_checksum": data_checksum, "git_commit": commit,
            "model_sha256": sha256_file(item.checkpoint)[:16]}


def _log_version(client: Any, item: ModelToRegister, reg_name: str, kind: str, params: Params,
                 tags: dict[str, str]) -> Any:
    """Log the `kind` module in the pt2 format into the item's run (torch.export: loading runs no pickled code
    and needs neither this package nor its classes) and register it; the run keeps its end time."""
    import mlflow
    from mlflow.models import infer_signature

    module = single_tensor_modules(item.model)[kind]
    example = (torch.randn((EXAMPLE_SIZE, params.latent_dim), generator=torch.Generator().manual_seed(0)).numpy()
               if kind == "generator" else np.ascontiguousarray(item.images[:EXAMPLE_SIZE], dtype=np.float32))
    with torch.no_grad():
        signature = infer_signature(example, module(torch.from_numpy(example)).numpy())
    ended = client.get_run(item.run_id).info.end_time  # log_model logs into the active run only: reopen it
    requirements = [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}",
                    f"numpy=={np.__version__}"]  # explicit: MLflow would spend seconds inferring them
    with mlflow.start_run(run_id=item.run_id):
        info = mlflow.pytorch.log_model(module, name=kind, signature=signature, input_example=example,
                                        pip_requirements=requirements, serialization_format="pt2")
    client.set_terminated(item.run_id, "FINISHED", end_time=ended)
    version = mlflow.register_model(info.model_uri, reg_name, tags=tags)
    # The test metrics also go to the logged model, tied to the test split: the model's page shows them.
    TrackedRun(client, item.run_id).log_metrics(
        {k: v for k, v in item.metrics.items() if "class_share" not in k}, model_id=info.model_id,
        dataset_name=params.data.source, dataset_digest=item.task.identity["test_split_sha256"])
    return version


def _alias(client: Any, reg_name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):
        return client.get_model_version_by_alias(reg_name, alias)
    return None


def register_model(params: Params, item: ModelToRegister, client: Any, data_checksum: str,
                   commit: str) -> dict[str, Any]:
    """Register `item` (or find its version), set `candidate`, and move its task's champion, and plain
    `champion` when that is its home task, if the gate passes against that task's champion."""
    gate, task = gate_rule(params, item.name), item.task
    value, wanted = item.metrics[gate.metric], identity(params, item, data_checksum, commit)
    tags = {**wanted, "gate_metric": gate.metric, "gate_value": repr(float(value)) if math.isfinite(value) else "nan",
            "task": task.key, **{f"task.{key}": text for key, text in task.identity.items()}}
    versions = {}
    for kind in single_tensor_modules(item.model):
        reg_name = f"{params.mlflow.model_prefix}-{item.name}-{kind}"
        if not client.search_registered_models(f"name = '{reg_name}'"):
            client.create_registered_model(reg_name, tags={HOME_TASK_TAG: task.key})  # its home task: this one
        found = [v for v in client.search_model_versions(f"name='{reg_name}'")
                 if all(v.tags.get(key) == text for key, text in wanted.items())]
        version = found[0] if found else _log_version(client, item, reg_name, kind, params, tags)
        print(f"register {item.name}: {reg_name} version {version.version}" + (" (the same weights)" if found else ""))
        client.set_registered_model_alias(reg_name, CANDIDATE, version.version)
        versions[kind] = (reg_name, str(version.version))
    return gate_report(params, item) | _decide(client, gate, value, task, versions)


def _decide(client: Any, gate: GateRule, value: float, task: Task,
            versions: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """The gate against the task's champion; the aliases it moves; the decision in words and numbers."""
    primary_name, primary_version = next(iter(versions.values()))
    home = client.get_registered_model(primary_name).tags.get(HOME_TASK_TAG)
    champion = _alias(client, primary_name, task.champion_alias)
    champion_version = None if champion is None else str(champion.version)
    champion_value = None if champion is None else float(champion.tags["gate_value"])  # some stores answer ints
    decision = decide(gate, value, champion_value, champion_version, primary_version)
    compared = None if champion_version in (None, primary_version) else {"version": int(champion_version),
                                                                        "value": champion_value}
    if decision.promote:
        for reg_name, version in versions.values():
            for alias in [task.champion_alias] + ([CHAMPION] if home == task.key else []):
                client.set_registered_model_alias(reg_name, alias, version)
        champion_version = primary_version
    plain = _alias(client, primary_name, CHAMPION)
    return {"promoted": decision.promote, "reason": f"task {task.key}: {decision.reason}",
            "candidate_version": int(primary_version), "compared_with": compared,
            "champion_version": None if champion_version is None else int(champion_version),
            "champion_alias": {"task": home, "version": None if plain is None else int(plain.version),
                               "same_task": home == task.key},
            "registered_models": {kind: name for kind, (name, _) in versions.items()}}
