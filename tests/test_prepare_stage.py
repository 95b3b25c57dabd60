import json

import numpy as np
import pytest
from helpers import run_stage, write_params

from unsupervised_mnist.data.dataset import load_split

FILES = ["data/prepared/train.npz", "data/prepared/val.npz", "data/prepared/test.npz",
         "metrics/data.json", "plots/data/noisy_examples.png"]


def run_prepare(folder, overrides=None):
    write_params(folder, overrides)
    run_stage(folder, "check")
    run_stage(folder, "data")
    run_stage(folder, "prepare")
    return {name: (folder / name).read_bytes() for name in FILES}


def test_prepare_twice_gives_identical_bytes(tmp_path):
    first = run_prepare(tmp_path / "a")
    second = run_prepare(tmp_path / "b")
    assert first == second


def test_default_split_sizes_and_noise(tmp_path):
    run_prepare(tmp_path, {"data.subset_fraction": 1.0})
    metrics = json.loads((tmp_path / "metrics/data.json").read_text())
    assert {k: v["n"] for k, v in metrics["splits"].items()} == {"train": 3600, "val": 400, "test": 1000}
    assert metrics["splits"]["test"]["per_class"] == {str(c): 100 for c in range(10)}
    # Gaussian noise of std 0.5 on MNIST: about 9.4 dB (measured independently in the issue).
    assert metrics["test_noisy_psnr_db"] == pytest.approx(9.4, abs=0.2)
    test = load_split("test", tmp_path / "data/prepared")
    assert test.clean.shape == (1000, 1, 28, 28) and 0 <= test.noisy.min() and test.noisy.max() <= 1
    assert load_split("train", tmp_path / "data/prepared").noisy is None


def test_splits_are_disjoint(tmp_path):
    run_prepare(tmp_path)
    rows = {}
    for name in ("train", "val", "test"):
        x = np.load(tmp_path / f"data/prepared/{name}.npz", allow_pickle=False)["x"]
        rows[name] = {image.tobytes() for image in x}
    assert not rows["train"] & rows["test"] and not rows["train"] & rows["val"] and not rows["val"] & rows["test"]


def test_seed_changes_the_split(tmp_path):
    a = run_prepare(tmp_path / "a")
    b = run_prepare(tmp_path / "b", {"seed": 7})
    assert a["data/prepared/test.npz"] != b["data/prepared/test.npz"]


@pytest.mark.parametrize(("kind", "level"), [("salt_pepper", 0.2), ("mask", 0.3)])
def test_noise_kinds_in_prepared_sets(tmp_path, kind, level):
    run_prepare(tmp_path, {"noise.kind": kind, "noise.level": level})
    test = load_split("test", tmp_path / "data/prepared")
    # Count hits only on grey pixels, where every hit shows (about 80% of MNIST pixels are black).
    grey = (test.clean > 0.05) & (test.clean < 0.95)
    hit = (test.noisy == 0) | (test.noisy == 1) if kind == "salt_pepper" else test.noisy == 0
    assert hit[grey].float().mean().item() == pytest.approx(level, rel=0.1)


def test_tampered_raw_file_is_refused_and_prepared_kept(tmp_path):
    run_prepare(tmp_path)
    before = (tmp_path / "data/prepared/test.npz").read_bytes()
    raw = tmp_path / "data/raw/mnist5k/train-labels-idx1-ubyte"
    raw.write_bytes(raw.read_bytes()[:-1] + b"\x03")
    result = run_stage(tmp_path, "prepare", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: data/raw/mnist5k/train-labels-idx1-ubyte: sha256 ")
    assert result.stderr.count("\n") == 1
    assert (tmp_path / "data/prepared/test.npz").read_bytes() == before
