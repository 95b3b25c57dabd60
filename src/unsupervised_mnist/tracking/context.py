"""What every MLflow run carries besides its metrics: the code's commit and whether it is dirty, the pipeline
execution it belongs to, the identity by which a rerun finds it again, every param, MLflow's own context tags and
ours, and the data it saw as MLflow dataset inputs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from unsupervised_mnist.config import Params
from unsupervised_mnist.io import sha256_file

PIPELINE_ENV = "UMNIST_PIPELINE_RUN"  # set it to group runs yourself (CI: the workflow run's id)
CODE_PATHS = ("src", "pipeline", "params.yaml", "dvc.yaml")  # what shapes a run; outputs are left out
SPLITS = ("train", "val", "test")


def git_state() -> tuple[str, bool]:
    """(commit, dirty): dirty when the code or params differ from that commit, untracked (not ignored) files
    among them included. The pipeline's own outputs (metrics/, reports/) are left out."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS],
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return commit.strip(), bool(status.strip())


def pipeline_execution() -> str:
    """One id for every stage of one `dvc repro` / `dvc exp run`: $UMNIST_PIPELINE_RUN if set, else the `dvc`
    process that runs this stage (pid and start time; with the experiment's name under `dvc exp run`, since a
    queue worker runs several), else this process alone."""
    if os.environ.get(PIPELINE_ENV):
        return os.environ[PIPELINE_ENV]
    import psutil

    for process in psutil.Process().parents():
        with contextlib.suppress(psutil.Error):
            if any(Path(part).name == "dvc" for part in process.cmdline()[:2]):
                experiment = os.environ.get("DVC_EXP_NAME")
                return f"{experiment + '@' if experiment else ''}dvc-{process.pid}-{int(process.create_time())}"
    return f"process-{os.getpid()}-{int(time.time())}"


def data_checksum(prepared_dir: Path = Path("data/prepared")) -> str:
    digest = hashlib.sha256()
    for path in sorted(prepared_dir.glob("*.npz")):
        digest.update(f"{path.name}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()[:16]


def run_key(params: Params, name: str) -> str:
    """What makes a run the same run: the representation, all the params, the data and the code's commit."""
    text = json.dumps([name, params.params_hash(), data_checksum(), git_state()[0]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def flat_params(node: Any, prefix: str = "") -> dict[str, str]:
    """`ae.lr`-style keys, values as text: every run carries every knob, so the UI can diff them."""
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in flat_params(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: str(node)}


def run_tags(params: Params, name: str, stage: str) -> dict[str, str]:
    """MLflow's own context tags (resolved as its fluent API would) and ours."""
    from mlflow.tracking.context.registry import resolve_tags

    tags = {"git_dirty": str(git_state()[1]).lower(), "params_hash": params.params_hash(), "model": name,
            "data_source": params.data.source, "stage": stage, "run_key": run_key(params, name),
            "pipeline_execution": pipeline_execution(), "mlflow.note.content": f"{stage} of `{name}`"}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    return resolve_tags(tags)


def dataset_inputs(params: Params, prepared_dir: Path) -> list:
    """One MLflow dataset per prepared split: named after the data source, digest = the first 16 hex digits
    of the split file's sha256, context train / val / test."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    noise = f"{params.noise.kind} {params.noise.level:g}"
    return [DatasetInput(Dataset(name=params.data.source, digest=sha256_file(path)[:16], source_type="local",
                                 source=json.dumps({"uri": str(path.resolve())}),
                                 profile=json.dumps({"split": split, "noise": noise})),
                         tags=[InputTag(MLFLOW_DATASET_CONTEXT, split)])
            for split in SPLITS if (path := prepared_dir / f"{split}.npz").is_file()]
