"""The real `dvc repro` of the whole pipeline, on tiny params, in a fresh copy of the repository."""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import CHROMIUM, REPO, REPRO_LOG, TRACKED_ENV, copy_project, dvc, require_system

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


def test_every_stage_writes_its_wall_time_outside_dvc(repo):
    """reports/timings/<stage>.json, named as DVC names the stage: start-up, compute and writing add up to the
    wall time; the training stages add where and how fast they trained. Not DVC outputs: they vary."""
    stages = {"check", "data", "prepare", "classifier", "baselines", "report", "register",
              *(f"train@{m}" for m in ("ae", "vae", "gan")), *(f"evaluate@{m}" for m in ("ae", "vae", "gan"))}
    timings = {path.stem: json.loads(path.read_text()) for path in (repo / "reports/timings").glob("*.json")}
    assert set(timings) == stages
    for name, t in timings.items():
        assert t["stage"] == name and t["import_s"] > 0 and t["compute_s"] >= 0 and t["write_s"] >= 0, t
        assert t["wall_s"] == pytest.approx(t["import_s"] + t["compute_s"] + t["write_s"], abs=0.02), t
    ae = timings["train@ae"]
    assert ae["epochs_run"] == 6 + 2 and 0 < ae["train_s"] < ae["wall_s"] and ae["device"] == "cpu"  # + DEC epochs
    assert ae["precision"] in ("fp32", "bf16") and ae["threads"] >= 1 and ae["torch"].startswith("2.")
    assert "reports/timings" not in (repo / "dvc.yaml").read_text()


def test_each_evaluate_stage_says_its_headline_numbers_in_one_line(repo):
    """The line `dvc repro` prints for each evaluated representation: the headline table's numbers, the
    manifold step's accuracy among them (a key that nothing wrote once went unnoticed there)."""
    lines = [line for line in (repo / REPRO_LOG).read_text().splitlines() if line.startswith("evaluate ")]
    said = {line.split(":")[0].removeprefix("evaluate "): line for line in lines if ": " in line and "[" not in line}
    assert set(said) == set(REPRESENTATIONS), lines
    for name, line in said.items():
        manifold = json.loads((repo / f"reports/eval/{name}.json").read_text())["test/manifold_acc"]
        assert f"manifold ACC {manifold:.3f}" in line and "k-means ACC" in line, line
    assert "PSNR" in said["ae"] and "-IWAE" in said["vae"] and "FID" in said["gan"] and "DEC-code" in said["ae"]


def test_summary_has_every_representation_floor_and_reference(repo):
    with open(repo / "reports/summary.csv") as handle:
        rows = {row["representation"]: row for row in csv.DictReader(handle)}
    assert list(rows) == ["noisy input (floor)", *REPRESENTATIONS, "ae: clustering code (DEC)",
                          "real train vs test (reference)"]
    assert float(rows["ae"]["denoise PSNR dB"]) > float(rows["noisy input (floor)"]["denoise PSNR dB"])
    assert rows["pixels"]["denoise PSNR dB"] == ""  # pixels are for clustering only
    assert float(rows["vae"]["-IWAE nats (lower)"]) <= float(rows["vae"]["-ELBO nats (lower)"])
    # The manifold step (UMAP of the codes, then a clusterer) runs in the default, and so the tiny, pipeline:
    # both columns for every representation, and clearly better than chance (0.1) on ten classes.
    for name in REPRESENTATIONS:
        assert 0.2 < float(rows[name]["k-means ACC"]) <= 1 and 0.2 < float(rows[name]["manifold ACC"]) <= 1, name
    assert 0.2 < float(rows["ae: clustering code (DEC)"]["k-means ACC"]) <= 1
    # The evaluator: even four epochs on 520 tiny-split digits make a classifier far better than chance.
    classifier = json.loads((repo / "metrics/classifier.json").read_text())
    assert classifier["test_accuracy"] > 0.85 and classifier["val_accuracy"] > 0.8, classifier


def test_metric_keys_are_shared_across_representations(repo):
    keys = {name: set(json.loads((repo / f"reports/eval/{name}.json").read_text())) for name in REPRESENTATIONS}
    common = {"test/recon_mse", "test/psnr_db", "test/ssim", "test/kmeans_acc", "test/kmeans_nmi",
              "test/kmeans_ari", "test/manifold_acc", "test/fid", "test/kid", "test/classifier_score",
              "val/psnr_db", "val/kmeans_acc", "val/manifold_acc", "val/fid"}  # val/: what settings are chosen on
    for name in ("ae", "vae", "gan", "pca"):
        assert common <= keys[name], name
        compared = json.loads((repo / f"metrics/eval/{name}.json").read_text())
        assert compared and set(compared) <= keys[name]  # the compared subset of the full results
    clustering = {"test/kmeans_acc", "test/kmeans_nmi", "test/kmeans_ari", "test/manifold_acc", "val/manifold_acc"}
    assert clustering <= keys["pixels"]
    assert {"test/neg_elbo", "test/iwae_nll", "val/iwae_nll"} <= keys["vae"]
    assert "test/dfeat_kmeans_acc" in keys["gan"]


def test_dvc_metrics_show_fits_a_terminal(repo):
    header = dvc(repo, "metrics", "show", "--md").stdout.splitlines()[0]
    columns = [cell.strip() for cell in header.strip().strip("|").split("|")]
    assert len(columns) <= 40, columns
    for key in ("test/psnr_db", "test/kmeans_acc", "test/kmeans_nmi", "test/fid", "test/neg_elbo", "test/iwae_nll",
                "val/recon_mse", "test_accuracy", "ae.promoted", "ae.champion_version", "gan.candidate_version"):
        assert key in columns, key
    assert not [c for c in columns if "class_share" in c or "per_class" in c or "reason" in c or "task" in c]


CURVES = ["Validation reconstruction MSE (noisy -> clean)", "AE loss", "VAE negative ELBO per image", "GAN losses"]


def test_dvc_plots_show_renders_each_defined_plot_once(repo):
    shown = json.loads(dvc(repo, "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown.get("errors")
    plots = shown["data"]
    assert [name for name in plots if not name.endswith(".png")] == CURVES
    assert all(len(renders) == 1 for renders in plots.values())
    images = [name for name in plots if name.endswith(".png")]
    assert "plots/data/noisy_examples.png" in images and "plots/eval/vae/samples.png" in images
    assert len(images) == 1 + 4 * 4 + 1  # noisy examples; 4 figures of ae, vae, gan, pca; pixels' latent space


def test_make_plots_renders_the_curves_offline_in_chromium(repo, tmp_path):
    """`make plots` writes dvc_plots/index.html with vega inlined: with the network cut, every curve renders."""
    require_system("Chromium", CHROMIUM.is_file(), "chromium")
    from playwright.sync_api import sync_playwright

    repo = copy_project(repo, tmp_path / "repo")
    env = {**TRACKED_ENV, "PATH": str(Path(sys.executable).parent) + os.pathsep + TRACKED_ENV["PATH"]}
    made = subprocess.run(["make", "plots"], cwd=repo, env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stdout + made.stderr
    page_file = repo / "dvc_plots/index.html"
    assert "cdn.jsdelivr.net" not in page_file.read_text()
    requested = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = browser.new_context(offline=True, viewport={"width": 1400, "height": 1200})
        context.route("**/*", lambda route: (requested.append(route.request.url),
                                             route.continue_() if route.request.url.startswith("file:")
                                             else route.abort()))
        page = context.new_page()
        page.goto(page_file.as_uri())
        drawn = "document.querySelectorAll('.vega-embed canvas, .vega-embed svg').length"
        page.wait_for_function(f"{drawn} >= {len(CURVES)}", timeout=30_000)
        rendered = page.evaluate("document.querySelectorAll('.vega-embed').length")
        (REPO / "reports").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "reports/dvc_plots_offline.png"), full_page=False)
        browser.close()
    assert rendered == len(CURVES)
    assert not [url for url in requested if not url.startswith(("file:", "data:"))], requested


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
