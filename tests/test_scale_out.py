"""Beyond one process: torchrun (DDP on gloo) and a DVC remote."""

import json
import os
import shutil
import subprocess

import pytest
import torch
from helpers import TRACKED_ENV, copy_project, dvc, git, run_stage, write_params

pytestmark = pytest.mark.slow

# Tiny AE; batch 64 in all: 32 per rank under two processes.
DDP_PARAMS = {"train.batch_size": 64, "ae.epochs": 4, "train.threads": 1}


@pytest.fixture
def prepared_project(tiny_prepared):
    return tiny_prepared


def clone_project(source, dest):
    """A project folder with the shared prepared data and the DDP params, nothing trained."""
    dest.mkdir()
    write_params(dest, DDP_PARAMS)  # the data params are the tiny ones: the prepared data matches them
    shutil.copytree(source / "data", dest / "data")
    return dest


def mlflow_runs(folder):
    from mlflow import MlflowClient

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("unsupervised-mnist")
    return client.search_runs([experiment.experiment_id])


def test_nproc_param_relaunches_the_stage_under_torchrun_and_matches_one_process(prepared_project, tmp_path):
    """train.nproc_per_node: 2 in params.yaml, and the stage's own command (as dvc.yaml runs it): the stage
    relaunches itself under torchrun, two processes train on disjoint halves of each batch (DDP on gloo), rank 0
    alone writes, logs and tracks; the result is as one process would have it, up to the batches' order."""
    from helpers import TINY, parse

    from unsupervised_mnist.training.train import Outputs, train_model

    ddp = clone_project(prepared_project, tmp_path / "ddp")
    write_params(ddp, {**DDP_PARAMS, "train.nproc_per_node": 2})
    result = run_stage(ddp, "train", "ae", env={**TRACKED_ENV, "OMP_NUM_THREADS": "1"})
    single, threads = Outputs.for_model("ae", tmp_path / "single"), torch.get_num_threads()
    try:  # in this process: no interpreter to start
        train_model("ae", parse({**TINY, **DDP_PARAMS}), prepared_dir=ddp / "data/prepared",
                    outputs=single, checkpoint_dir=tmp_path / "single/.checkpoints")
    finally:
        torch.set_num_threads(threads)  # train.threads: 1 set it for the process

    assert sorted(p.name for p in (ddp / "models").iterdir()) == ["ae.pt", "ae.run.json"]
    assert len(mlflow_runs(ddp)) == 1
    timings = json.loads((ddp / "reports/timings/train@ae.json").read_text())
    assert timings["processes"] == 2 and timings["stage"] == "train@ae" and timings["wall_s"] > timings["train_s"] > 0
    epochs = DDP_PARAMS["ae.epochs"] + TINY["ae.dec.epochs"]  # and the DEC phase's
    assert result.stdout.count("ae [1/") == 1 and result.stdout.count(f"ae [{epochs}/{epochs}]") == 1  # rank 0 logs
    ddp_val = json.loads((ddp / "metrics/train/ae.json").read_text())["val/loss"]
    single_val = json.loads(single.metrics.read_text())["val/loss"]
    assert abs(ddp_val - single_val) / single_val < 0.05, (ddp_val, single_val)
    assert ddp_val != single_val  # two processes really ran (different batches, same global size)


def test_batch_must_split_evenly_over_the_processes(prepared_project, tmp_path):
    folder = clone_project(prepared_project, tmp_path / "odd")
    write_params(folder, {**DDP_PARAMS, "train.batch_size": 63})
    env = {**TRACKED_ENV, "UMNIST_MLFLOW": "off", "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    result = run_stage(folder, "train", "ae", env=env, check=False)
    assert result.returncode == 2
    assert "train.batch_size=63 must be divisible by the 2 training processes" in result.stderr


# The MLflow server on PostgreSQL: see tests/test_mlflow.py.


def test_dvc_remote_push_then_fresh_clone_pull_reruns_nothing(tiny_repo, tmp_path):
    repo = copy_project(tiny_repo, tmp_path / "repo")
    dvc(repo, "remote", "add", "-d", "local", str(tmp_path / "remote"))
    dvc(repo, "push")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tiny run, remote configured")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert not (clone / "models/ae.pt").exists()
    dvc(clone, "pull")
    assert (clone / "models/ae.pt").read_bytes() == (repo / "models/ae.pt").read_bytes()
    result = dvc(clone, "repro", env=TRACKED_ENV)
    assert "Data and pipelines are up to date." in result.stdout, result.stdout
    assert "Running stage" not in result.stdout
    assert os.listdir(tmp_path / "remote")
