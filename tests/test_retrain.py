"""scripts/retrain, the logic behind the retrain workflow, run for real on a copy of the tiny project."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import REPO, TINY, TRACKED_ENV, copy_project, git

pytestmark = pytest.mark.slow


def retrain(repo, *args):
    env = {**TRACKED_ENV, "PATH": str(Path(sys.executable).parent) + os.pathsep + TRACKED_ENV["PATH"]}
    return subprocess.run(["scripts/retrain", *args], cwd=repo, env=env, capture_output=True, text=True)


def section(report, title):
    return report.split(f"## {title}")[1].split("\n## ")[0]


def test_retrain_reports_the_changed_param_and_the_moved_metrics(tiny_repo, tmp_path):
    repo = copy_project(tiny_repo, tmp_path / "repo")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tiny params and their results")

    # CI's smoke retrain (ci.yml): its tiny params are the suite's own (tests/tiny_params.yaml), so on the
    # tiny project nothing changes and DVC reruns nothing.
    venv = Path(sys.executable).parent.parent
    first = subprocess.run(["make", "-C", str(repo), "smoke-retrain", f"VENV={venv}"], env=TRACKED_ENV,
                           capture_output=True, text=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Running stage" not in first.stdout
    report = (repo / "reports/retrain.md").read_text()
    assert "`dvc repro` succeeded" in report and "no DVC remote configured" in report
    assert "ae.epochs" in section(report, "Params changed")  # HEAD~1 holds the full-size params
    tiny_epochs = TINY["ae.epochs"]
    assert f"ae.epochs={tiny_epochs}" in report  # the overrides it applied

    # A worse AE (fewer epochs); the floor is lowered so that the comparison decides, not the floor.
    second = retrain(repo, "--base", "HEAD", "-S", "ae.epochs=1", "-S", "register.ae.floor=5")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    report = (repo / "reports/retrain.md").read_text()
    params = section(report, "Params changed")
    assert re.search(rf"\| ae\.epochs +\| {tiny_epochs} +\| 1 +\|", params), params
    assert len([line for line in params.splitlines() if line.startswith("| ") and "Path" not in line]) == 2
    metrics = section(report, "Metrics moved")
    assert "metrics/eval/ae.json" in metrics and "test/psnr_db" in metrics, metrics
    assert "metrics/eval/vae.json" not in metrics  # only what depends on the AE moved
    decisions = section(report, "Registry decisions")
    assert "| ae | test/psnr_db |" in decisions and "not champion" in decisions, decisions
    assert "ae.epochs=1" in report
    # The plots of HEAD and of this run side by side, as DVC's CI reports show them, offline.
    assert "retrain_plots/index.html" in section(report, "Plots")
    page = (repo / "reports/retrain_plots/index.html").read_text()
    assert "plots/train/ae.csv" in page and "HEAD" in page and "workspace" in page and "cdn.jsdelivr" not in page

    decision = json.loads((repo / "metrics/register.json").read_text())["ae"]
    assert decision["promoted"] is False and decision["candidate_version"] == 2
    assert decision["champion_version"] == 1 and decision["compared_with"]["version"] == 1
    assert "does not beat champion v1" in decision["reason"], decision["reason"]
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    for kind in ("denoiser", "encoder"):
        name = f"unsupervised-mnist-ae-{kind}"
        assert str(client.get_model_version_by_alias(name, "candidate").version) == "2"
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"


def test_overrides_are_set_in_place_keeping_comments():
    sys.path.insert(0, str(REPO / "scripts"))
    from set_params import set_values

    original = (REPO / "params.yaml").read_text()
    changed = set_values(original, ["ae.epochs=7", "noise.level=0.25", "register.gan.floor=1000"])
    diff = [(a, b) for a, b in zip(original.splitlines(), changed.splitlines()) if a != b]
    assert len(original.splitlines()) == len(changed.splitlines()) and len(diff) == 3
    assert diff[0][1].startswith("  level: 0.25 ") and diff[0][1].endswith("# std for gaussian; pixel probability "
                                                                           "for salt_pepper and mask")
    ae_epochs = yaml.safe_load(original)["ae"]["epochs"]
    assert diff[1][0].startswith(f"  epochs: {ae_epochs}") and diff[1][1].startswith("  epochs: 7")
    assert diff[1][0].split("#")[1:] == diff[1][1].split("#")[1:]  # its comment kept
    assert "path: null" in changed  # nulls stay nulls


def test_retrain_fails_on_a_bad_override_and_says_so(tiny_repo, tmp_path):
    repo = copy_project(tiny_repo, tmp_path / "repo")
    before = (repo / "params.yaml").read_text()
    result = retrain(repo, "--base", "HEAD", "-S", "noise.kind=gauss")
    assert result.returncode == 2
    assert "error: params.yaml: noise.kind='gauss' is not one of gaussian, salt_pepper, mask" in result.stderr
    assert "**failed** (exit code 2)" in (repo / "reports/retrain.md").read_text()
    assert (repo / "params.yaml").read_text() == before
