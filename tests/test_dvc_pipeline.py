"""The real `dvc repro` of the whole pipeline, on tiny params, in a fresh copy of the repository: every model of
params.yaml's list and every baseline, whatever they are."""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import (
    CHROMIUM,
    MODELS,
    PARAMS_READ,
    REPO,
    REPRESENTATIONS,
    REPRO_LOG,
    TRACKED_ENV,
    copy_project,
    dvc,
    require_system,
)

pytestmark = pytest.mark.slow
# DVC locks a repository while it works in it: the tests that run it in the shared project itself share a worker.
IN_PLACE = pytest.mark.xdist_group("dvc-in-tiny-repo")


@pytest.fixture
def repo(tiny_repo):
    return tiny_repo


@IN_PLACE
def test_repro_writes_outputs_and_is_up_to_date(repo):
    per_model = [f"{folder}/{m}.{ext}" for m in MODELS for folder, ext in (("models", "pt"), ("plots/train", "csv"))]
    for name in ("data/prepared/train.npz", "metrics/data.json", "plots/data/noisy_examples.png",
                 "models/classifier.pt", "reports/summary.md", *per_model,
                 *(f"plots/eval/{r}/latent_2d.png" for r in REPRESENTATIONS)):
        assert (repo / name).is_file(), name
    start = time.perf_counter()
    result = dvc(repo, "repro", env=TRACKED_ENV)
    assert "Data and pipelines are up to date." in result.stdout
    assert time.perf_counter() - start < 10  # generous for CI; measured by hand: about 1 s
    assert "changed" not in dvc(repo, "status").stdout


def stage_params(repo) -> dict[str, list[str]]:
    """DVC's stage name -> the params dvc.yaml lists for it (foreach stages resolved for each model)."""
    listed = {}
    for name, stage in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"].items():
        for item in MODELS if "foreach" in stage else [None]:
            body = stage.get("do", stage)
            keys = [next(iter(p)) if isinstance(p, dict) else p for p in body.get("params", [])]
            listed[f"{name}@{item}" if item else name] = [k.replace("${item}", str(item)) for k in keys]
    return listed


def test_every_param_a_stage_reads_is_in_its_dvc_params(repo):
    """Each stage noted every params key its code read (config.Params records them); dvc.yaml must list each, or
    a section or the whole file holding it, so that changing it reruns the stage. mlflow.* only says where runs
    are logged: no output depends on it."""
    listed, problems = stage_params(repo), []
    for path in sorted((repo / PARAMS_READ).glob("*.json")):
        stage, keys = path.stem, json.loads(path.read_text())
        covered = listed[stage]
        for key in keys:
            if not key.startswith("mlflow.") and "params.yaml" not in covered and not any(
                    key == c or key.startswith(c + ".") for c in covered):
                problems.append(f"stage {stage} reads {key} but dvc.yaml does not list it")
    assert {p.stem for p in (repo / PARAMS_READ).glob("*.json")} == set(listed)  # every stage noted its reads
    assert not problems, "\n".join(problems)
    assert "train.precision" in json.loads((repo / PARAMS_READ / "classifier.json").read_text())


def test_changing_train_precision_marks_the_classifier_stale(repo, tmp_path):
    repo = copy_project(repo, tmp_path / "repo")
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("precision: auto", "precision: fp32", 1))
    status = json.loads(dvc(repo, "status", "--json").stdout)
    assert "classifier" in status and any(s.startswith("train@") for s in status)
    assert not any(s.startswith(("evaluate@", "prepare", "data")) for s in status)  # they read no precision


def test_every_stage_writes_its_wall_time_outside_dvc(repo):
    """reports/timings/<stage>.json, named as DVC names the stage, for every stage; the training stages add where
    and how fast they trained. Not DVC outputs: they vary. (tests/test_stage.py checks the split of the time.)"""
    stages = set(stage_params(repo))
    timings = {path.stem: json.loads(path.read_text()) for path in (repo / "reports/timings").glob("*.json")}
    assert set(timings) == stages
    tiny = yaml.safe_load((repo / "params.yaml").read_text())
    for name in MODELS:
        t = timings[f"train@{name}"]
        assert t["stage"] == f"train@{name}" and 0 < t["train_s"] < t["compute_s"] < t["wall_s"], t
        assert t["device"] == "cpu" and t["precision"] in ("fp32", "bf16") and t["threads"] >= 1, t
        assert t["epochs_run"] >= tiny[name]["epochs"] and t["torch"].startswith("2."), t
    assert timings["train@ae"]["epochs_run"] == tiny["ae"]["epochs"] + tiny["ae"]["dec"]["epochs"]  # every phase
    assert "reports/timings" not in (repo / "dvc.yaml").read_text()


def test_each_evaluate_stage_says_its_headline_numbers_in_one_line(repo):
    """The line `dvc repro` prints for each evaluated representation: the headline table's numbers, the
    manifold step's accuracy among them (a key that nothing wrote once went unnoticed there)."""
    lines = [line for line in (repo / REPRO_LOG).read_text().splitlines() if line.startswith("evaluate ")]
    said = {line.split(":")[0].removeprefix("evaluate "): line for line in lines if ": " in line and "[" not in line}
    assert set(said) == set(REPRESENTATIONS), lines
    for name, line in said.items():
        results = json.loads((repo / f"reports/eval/{name}.json").read_text())
        assert f"manifold ACC {results['test/manifold_acc']:.3f}" in line and "k-means ACC" in line, line
        assert ("PSNR" in line) == ("test/psnr_db" in results) and ("FID" in line) == ("test/fid" in results), line
        assert ("-IWAE" in line) == ("test/iwae_nll" in results), line
    assert "DEC-code" in said["ae"]


def test_summary_has_every_representation_floor_and_reference(repo):
    with open(repo / "reports/summary.csv") as handle:
        rows = {row["representation"]: row for row in csv.DictReader(handle)}
    codes = [f"{name}: clustering code (DEC)" for name in REPRESENTATIONS
             if "test/dec_kmeans_acc" in json.loads((repo / f"reports/eval/{name}.json").read_text())]
    assert list(rows) == ["noisy input (floor)", *REPRESENTATIONS, *codes, "real train vs test (reference)"]
    assert codes == ["ae: clustering code (DEC)"]
    floor = float(rows["noisy input (floor)"]["denoise PSNR dB"])
    for name in REPRESENTATIONS:
        results = json.loads((repo / f"reports/eval/{name}.json").read_text())
        psnr = rows[name]["denoise PSNR dB"]
        assert (psnr == "") == ("test/psnr_db" not in results), name  # those that do not decode have none
        # The manifold step (UMAP of the codes, then a clusterer) runs in the default, and so the tiny, pipeline:
        # both columns for every representation, and clearly better than chance (0.1) on ten classes.
        assert 0.2 < float(rows[name]["k-means ACC"]) <= 1 and 0.2 < float(rows[name]["manifold ACC"]) <= 1, name
        if "test/iwae_nll" in results:
            assert float(rows[name]["-IWAE nats (lower)"]) <= float(rows[name]["-ELBO nats (lower)"])
    assert float(rows["ae"]["denoise PSNR dB"]) > floor
    assert rows["pixels"]["denoise PSNR dB"] == ""  # pixels are for clustering only
    assert 0.2 < float(rows["ae: clustering code (DEC)"]["k-means ACC"]) <= 1
    # The evaluator: even a few epochs on 520 tiny-split digits make a classifier far better than chance.
    classifier = json.loads((repo / "metrics/classifier.json").read_text())
    assert classifier["test_accuracy"] > 0.85 and classifier["val_accuracy"] > 0.8, classifier


def test_metric_keys_are_shared_across_representations(repo):
    keys = {name: set(json.loads((repo / f"reports/eval/{name}.json").read_text())) for name in REPRESENTATIONS}
    clustering = {"test/kmeans_acc", "test/kmeans_nmi", "test/kmeans_ari", "test/manifold_acc", "val/kmeans_acc",
                  "val/manifold_acc"}  # val/: what settings are chosen on
    decoding = {"test/recon_mse", "test/psnr_db", "test/ssim", "val/psnr_db", "test/fid", "test/kid",
                "test/classifier_score", "val/fid"}
    for name in REPRESENTATIONS:
        assert clustering <= keys[name], name
        if "test/psnr_db" in keys[name]:
            assert decoding <= keys[name], name  # whatever decodes also generates, from its prior or its codes
        compared = json.loads((repo / f"metrics/eval/{name}.json").read_text())
        assert compared and set(compared) <= keys[name]  # the compared subset of the full results
    for name in MODELS:
        assert "test/psnr_db" in keys[name], name
    assert {"test/neg_elbo", "test/iwae_nll", "val/iwae_nll"} <= keys["vae"]
    assert "test/dfeat_kmeans_acc" in keys["gan"]


@IN_PLACE
def test_dvc_metrics_show_fits_a_terminal(repo):
    """About 30 shared columns, and three per model (its registry decision): the budget grows with the list."""
    header = dvc(repo, "metrics", "show", "--md").stdout.splitlines()[0]
    columns = [cell.strip() for cell in header.strip().strip("|").split("|")]
    assert len(columns) <= 31 + 3 * len(MODELS), columns
    for key in ("test/psnr_db", "test/kmeans_acc", "test/kmeans_nmi", "test/fid", "test/neg_elbo", "test/iwae_nll",
                "val/recon_mse", "test_accuracy", *(f"{m}.{k}" for m in MODELS for k in ("promoted",
                                                                                         "champion_version",
                                                                                         "candidate_version"))):
        assert key in columns, key
    assert not [c for c in columns if "class_share" in c or "per_class" in c or "reason" in c or "task" in c]


@IN_PLACE
def test_dvc_plots_show_renders_each_defined_plot_once(repo):
    """Each model's losses (the `losses` template: a small chart per loss), each representation's figures."""
    shown = json.loads(dvc(repo, "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown.get("errors")
    plots = shown["data"]
    assert all(len(renders) == 1 for renders in plots.values())
    curves = [name for name in plots if not name.endswith(".png")]
    assert curves == [f"plots/train/{m}.csv" for m in sorted(MODELS)]
    for name in curves:
        values = plots[name][0]["content"]["data"]["values"]
        assert {v["split"] for v in values} == {"train", "val"} and {"epoch", "loss", "value"} <= set(values[0])
    figures = sorted(str(p.relative_to(repo)) for p in (repo / "plots").rglob("*.png"))
    assert sorted(name for name in plots if name.endswith(".png")) == figures
    assert "plots/data/noisy_examples.png" in figures and "plots/eval/vae/samples.png" in figures


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
        page.wait_for_function(f"{drawn} >= {len(MODELS)}", timeout=30_000)
        rendered = page.evaluate("document.querySelectorAll('.vega-embed').length")
        (REPO / "reports").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "reports/dvc_plots_offline.png"), full_page=False)
        browser.close()
    assert rendered == len(MODELS)
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
