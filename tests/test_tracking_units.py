"""Tracking without a pipeline: where the store is, what counts as dirty, bad URIs, task identities."""

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import ENV, git, params_with, run_stage, write_params

from unsupervised_mnist.io import save_npz
from unsupervised_mnist.models.registry import parse_params
from unsupervised_mnist.tracking.context import git_state
from unsupervised_mnist.tracking.runs import TrackingError, connect, tracking_uri, workspace_root
from unsupervised_mnist.tracking.task import task_for


def test_the_default_store_is_at_the_main_workspace(tmp_path, monkeypatch):
    """DVC names the main workspace in DVC_ROOT for every stage, also in the temporary copies of `dvc exp run
    --temp` and `--queue`; outside DVC, a copy under .dvc/tmp/exps still finds the workspace that holds it."""
    main = tmp_path / "project"
    inside = main / ".dvc/tmp/exps/tmpk2j3/sub"
    inside.mkdir(parents=True)
    for variable in ("MLFLOW_TRACKING_URI", "DVC_ROOT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(inside)
    assert workspace_root() == main.resolve()
    assert tracking_uri() == f"sqlite:///{main.resolve() / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(main))
    assert tracking_uri() == f"sqlite:///{main / 'mlflow.db'}"


def test_untracked_code_counts_as_dirty(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    (tmp_path / "src/model.py").write_text("x = 1\n")
    (tmp_path / ".gitignore").write_text("*.log\n")
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "start")
    monkeypatch.chdir(tmp_path)
    assert git_state()[1] is False
    (tmp_path / "src/run.log").write_text("ignored\n")
    (tmp_path / "metrics.json").write_text("{}\n")  # an output outside the code paths
    assert git_state()[1] is False
    (tmp_path / "src/new_module.py").write_text("y = 2\n")
    commit, dirty = git_state()
    assert dirty is True and len(commit) == 40


def test_unusable_tracking_uri_is_one_line(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "foo://bar")
    with pytest.raises(TrackingError, match=r"^MLFLOW_TRACKING_URI='foo://bar': MLflow cannot use this tracking URI"):
        connect(parse_params(params_with({})))


def test_unusable_tracking_uri_stops_train_before_training(tmp_path):
    write_params(tmp_path)
    env = {**ENV, "UMNIST_MLFLOW": "on", "MLFLOW_TRACKING_URI": "foo://bar"}
    result = run_stage(tmp_path, "train", "ae", check=False, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: MLFLOW_TRACKING_URI='foo://bar': MLflow cannot use")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_task_identity_separates_noise_data_and_evaluators(tmp_path):
    prepared = tmp_path / "prepared"
    rng = np.random.default_rng(0)
    save_npz(prepared / "test.npz", x=rng.integers(0, 255, (4, 28, 28), dtype=np.uint8), y=np.arange(4))
    other = tmp_path / "other"
    save_npz(other / "test.npz", x=rng.integers(0, 255, (4, 28, 28), dtype=np.uint8), y=np.arange(4))
    classifier = tmp_path / "classifier.pt"
    classifier.write_bytes(b"weights a")
    base = parse_params(params_with({}))
    task = task_for(base, "test/psnr_db", prepared, classifier, 1000)
    assert re.fullmatch(r"mnist5k-gaussian-0p5-[0-9a-f]{8}", task.key)
    assert task.champion_alias == f"champion-{task.key}"
    assert re.fullmatch(r"[\w\-]+", task.champion_alias)  # MLflow's rule for alias names
    assert task_for(base, "test/psnr_db", prepared, classifier, 400) == task  # PSNR needs no sample count
    noisier = parse_params(params_with({"noise.level": 0.1}))
    assert task_for(noisier, "test/psnr_db", prepared, classifier, 1000).key.startswith("mnist5k-gaussian-0p1-")
    assert task_for(base, "test/psnr_db", other, classifier, 1000).key != task.key  # other test images
    fid = task_for(base, "test/fid", prepared, classifier, 1000)
    assert fid.identity["n_samples"] == "1000" and task_for(base, "test/fid", prepared, classifier, 400) != fid
    classifier.write_bytes(b"weights b")
    assert task_for(base, "test/fid", prepared, classifier, 1000).key != fid.key  # another feature extractor
    assert task_for(base, "test/psnr_db", prepared, classifier, 1000) == task


def test_git_outside_a_repository_is_unknown_and_dirty(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(Path(tmp_path).parent))
    assert subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True).returncode != 0
    assert git_state() == ("unknown", True)
