"""Beyond one process: torchrun (DDP on gloo) and a DVC remote."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, TRACKED_ENV, copy_project, dvc, git, run_stage, write_params

from unsupervised_mnist.training.distributed import torchrun_command

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


def test_torchrun_two_processes_match_one_process(prepared_project, tmp_path):
    torchrun = str(Path(sys.executable).parent / "torchrun")
    ddp = clone_project(prepared_project, tmp_path / "ddp")
    env = {**TRACKED_ENV, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(REPO / "pipeline/train.py"), "ae"],
                            cwd=ddp, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    single = clone_project(prepared_project, tmp_path / "single")
    run_stage(single, "train", "ae", env=env)

    assert sorted(p.name for p in (ddp / "models").iterdir()) == ["ae.pt", "ae.run.json"]
    assert len(mlflow_runs(ddp)) == 1
    timings = json.loads((ddp / "reports/timings/train@ae.json").read_text())
    assert timings["processes"] == 2 and timings["stage"] == "train@ae" and timings["wall_s"] > timings["train_s"] > 0
    assert result.stdout.count("ae [1/") == 1 and result.stdout.count("ae [6/6]") == 1  # rank 0 alone logs (4 + 2 DEC)
    ddp_val = json.loads((ddp / "metrics/train/ae.json").read_text())["val/loss"]
    single_val = json.loads((single / "metrics/train/ae.json").read_text())["val/loss"]
    assert abs(ddp_val - single_val) / single_val < 0.05, (ddp_val, single_val)
    assert ddp_val != single_val  # two processes really ran (different batches, same global size)


def test_nproc_param_relaunches_the_stage_under_torchrun():
    command = torchrun_command(2, "pipeline/train.py", "ae")
    assert command[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "pipeline/train.py", "ae"]


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
