"""The data and prepare stages: run once for real (tiny params) and shared; variations of the params go
through the same library calls in-process (no interpreter start-up per case)."""

import json
import shutil

import numpy as np
import pytest
from helpers import params_with, run_stage

from unsupervised_mnist.config import parse_params
from unsupervised_mnist.data.dataset import load_split
from unsupervised_mnist.data.prepare import prepare
from unsupervised_mnist.data.sources import read_raw

FILES = ["data/prepared/train.npz", "data/prepared/val.npz", "data/prepared/test.npz",
         "metrics/data.json", "plots/data/noisy_examples.png"]


@pytest.fixture
def project(tiny_prepared):
    return tiny_prepared


def outputs(folder):
    return {name: (folder / name).read_bytes() for name in FILES}


def prepared_with(project, tmp_path, overrides):
    """The prepared splits and data metrics for other params, from the same raw files."""
    out = tmp_path / "prepared"
    metrics = prepare(read_raw(project / "data/raw/mnist5k"), parse_params(params_with(overrides)), out)
    return out, metrics


def test_prepare_twice_gives_identical_bytes(project, tmp_path):
    again = tmp_path / "again"
    shutil.copytree(project / "data/raw", again / "data/raw")
    shutil.copy(project / "params.yaml", again / "params.yaml")
    run_stage(again, "prepare")
    assert outputs(again) == outputs(project)


def test_default_split_sizes_and_noise(project, tmp_path):
    out, metrics = prepared_with(project, tmp_path, {"data.subset_fraction": 1.0})
    assert {k: v["n"] for k, v in metrics["splits"].items()} == {"train": 3600, "val": 400, "test": 1000}
    assert metrics["splits"]["test"]["per_class"] == {str(c): 100 for c in range(10)}
    # Gaussian noise of std 0.5 on MNIST: about 9.4 dB (measured independently in the issue).
    assert metrics["test_noisy_psnr_db"] == pytest.approx(9.4, abs=0.2)
    test = load_split("test", out)
    assert test.clean.shape == (1000, 1, 28, 28) and 0 <= test.noisy.min() and test.noisy.max() <= 1
    assert load_split("train", out).noisy is None


def test_tiny_split_sizes_and_metrics_file(project):
    metrics = json.loads((project / "metrics/data.json").read_text())
    assert {k: v["n"] for k, v in metrics["splits"].items()} == {"train": 720, "val": 80, "test": 200}


def test_splits_are_disjoint(project):
    rows = {}
    for name in ("train", "val", "test"):
        x = np.load(project / f"data/prepared/{name}.npz", allow_pickle=False)["x"]
        rows[name] = {image.tobytes() for image in x}
    assert not rows["train"] & rows["test"] and not rows["train"] & rows["val"] and not rows["val"] & rows["test"]


def test_seed_changes_the_split(project, tmp_path):
    out, _ = prepared_with(project, tmp_path, {"data.subset_fraction": 0.2, "seed": 7})
    assert (out / "test.npz").read_bytes() != (project / "data/prepared/test.npz").read_bytes()
    same, _ = prepared_with(project, tmp_path / "same", {"data.subset_fraction": 0.2})
    assert (same / "test.npz").read_bytes() == (project / "data/prepared/test.npz").read_bytes()


@pytest.mark.parametrize(("kind", "level"), [("salt_pepper", 0.2), ("mask", 0.3)])
def test_noise_kinds_in_prepared_sets(project, tmp_path, kind, level):
    out, _ = prepared_with(project, tmp_path, {"data.subset_fraction": 0.2, "noise.kind": kind, "noise.level": level})
    test = load_split("test", out)
    # Count hits only on grey pixels, where every hit shows (about 80% of MNIST pixels are black).
    grey = (test.clean > 0.05) & (test.clean < 0.95)
    hit = (test.noisy == 0) | (test.noisy == 1) if kind == "salt_pepper" else test.noisy == 0
    assert hit[grey].float().mean().item() == pytest.approx(level, rel=0.1)


def test_tampered_raw_file_is_refused_and_prepared_kept(project, tmp_path):
    folder = tmp_path / "tampered"
    shutil.copytree(project, folder)
    before = (folder / "data/prepared/test.npz").read_bytes()
    raw = folder / "data/raw/mnist5k/train-labels-idx1-ubyte"
    raw.write_bytes(raw.read_bytes()[:-1] + b"\x03")
    result = run_stage(folder, "prepare", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: data/raw/mnist5k/train-labels-idx1-ubyte: sha256 ")
    assert result.stderr.count("\n") == 1
    assert (folder / "data/prepared/test.npz").read_bytes() == before
