"""The real `dvc repro` of the whole pipeline, on tiny params, in a fresh copy of the repository."""

import csv
import json
import time

import pytest
from helpers import TRACKED_ENV, copy_project, dvc

pytestmark = pytest.mark.slow

REPRESENTATIONS = ["ae", "vae", "gan", "pca", "pixels"]


@pytest.fixture
def repo(tiny_repo):
    return tiny_repo


def test_repro_writes_outputs_and_is_up_to_date(repo):
    for name in ("data/prepared/train.npz", "metrics/data.json", "plots/data/noisy_examples.png",
                 "models/ae.pt", "models/classifier.pt", "reports/summary.md", "plots/eval/vae/samples.png"):
        assert (repo / name).is_file(), name
    start = time.perf_counter()
    result = dvc(repo, "repro", env=TRACKED_ENV)
    assert "Data and pipelines are up to date." in result.stdout
    assert time.perf_counter() - start < 10  # generous for CI; measured by hand: about 1 s
    assert "changed" not in dvc(repo, "status").stdout


def test_summary_has_every_representation_floor_and_reference(repo):
    with open(repo / "reports/summary.csv") as handle:
        rows = {row["representation"]: row for row in csv.DictReader(handle)}
    assert list(rows) == ["noisy input (floor)", *REPRESENTATIONS, "real val vs test (reference)"]
    assert float(rows["ae"]["denoise PSNR dB"]) > float(rows["noisy input (floor)"]["denoise PSNR dB"])
    assert rows["pixels"]["denoise PSNR dB"] == ""  # pixels are for clustering only
    assert float(rows["vae"]["-IWAE nats (lower)"]) <= float(rows["vae"]["-ELBO nats (lower)"])


def test_metric_keys_are_shared_across_representations(repo):
    keys = {name: set(json.loads((repo / f"metrics/eval/{name}.json").read_text())) for name in REPRESENTATIONS}
    common = {"test/recon_mse", "test/psnr_db", "test/ssim", "test/kmeans_acc", "test/kmeans_nmi",
              "test/kmeans_ari", "test/fid", "test/kid", "test/classifier_score"}
    for name in ("ae", "vae", "gan", "pca"):
        assert common <= keys[name], name
    assert {"test/kmeans_acc", "test/kmeans_nmi", "test/kmeans_ari"} <= keys["pixels"]
    assert {"test/neg_elbo", "test/iwae_nll"} <= keys["vae"]
    assert "test/dfeat_kmeans_acc" in keys["gan"]


def test_dvc_metrics_show_and_plots_show(repo):
    shown = dvc(repo, "metrics", "show", "--json").stdout
    for key in ("test/kmeans_acc", "test_accuracy", "test_noisy_psnr_db", "val/recon_mse"):
        assert key in shown
    dvc(repo, "plots", "show", "-o", "dvc_plots")
    html = (repo / "dvc_plots/index.html").read_text()
    assert "val_recon_mse" in html and "samples.png" in html


@pytest.mark.parametrize(("old", "new", "line"), [
    ("kind: gaussian", "kind: gauss", "noise.kind='gauss' is not one of gaussian, salt_pepper, mask"),
    ("lr: 0.002", "lr: .nan", "ae.lr=nan must be a finite number"),  # the first lr: is ae.lr
])
def test_bad_param_stops_repro_before_outputs_are_touched(repo, tmp_path, old, new, line):
    repo = copy_project(repo, tmp_path / "repo")  # the shared project stays as it is
    before = {p.name: p.read_bytes() for p in (repo / "data/prepared").iterdir()}
    model = (repo / "models/ae.pt").read_bytes()
    params = (repo / "params.yaml").read_text()
    assert old in params
    (repo / "params.yaml").write_text(params.replace(old, new, 1))
    result = dvc(repo, "repro", check=False, env=TRACKED_ENV)
    assert result.returncode != 0
    assert f"error: params.yaml: {line}\n" in result.stderr
    assert "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in (repo / "data/prepared").iterdir()} == before
    assert (repo / "models/ae.pt").read_bytes() == model
