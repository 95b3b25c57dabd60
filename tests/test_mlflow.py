"""MLflow on the shared tiny pipeline (tests/conftest.py): runs, registry, aliases, the gate, a server
on 127.0.0.1, and the comparison in the MLflow UI. Tests that change the store work on a copy."""

import json
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml
from helpers import (
    CHROMIUM,
    MODELS,
    REPO,
    REPRESENTATIONS,
    TRACKED_ENV,
    copy_project,
    dvc,
    free_port,
    git,
    make_server,
    mlflow_server,
    postgres_cluster,
    require_system,
    run_stage,
)

from unsupervised_mnist.io import sha256_file

pytestmark = pytest.mark.slow

EXPERIMENT = "unsupervised-mnist"


def registered_names(repo) -> list[str]:
    """Every registered model name the pipeline made: one per module each model exports (its `exports()`)."""
    decisions = json.loads((repo / "metrics/register.json").read_text())
    return [name for model in MODELS for name in decisions[model]["registered_models"].values()]


def client_for(uri):
    from mlflow import MlflowClient

    return MlflowClient(uri, uri)


def store(repo):
    return f"sqlite:///{repo / 'mlflow.db'}"


def latest_runs(client):
    experiment = client.get_experiment_by_name(EXPERIMENT)
    latest = {}
    for run in client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"]):
        latest.setdefault(run.info.run_name, run)
    return experiment, latest


def version_counts(client, names):
    return {name: len(client.search_model_versions(f"name='{name}'")) for name in names}


def copy_of(repo, tmp_path):
    """A copy of the tiny project with its own sqlite store (artifacts stay where they were logged)."""
    return copy_project(repo, tmp_path / "repo")


def test_every_model_and_baseline_has_a_run_with_tags_params_and_metrics(tiny_repo):
    client = client_for(store(tiny_repo))
    experiment, runs = latest_runs(client)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI's training view
    assert set(REPRESENTATIONS) <= set(runs)
    ae = runs["ae"]
    tags = ae.data.tags
    assert len(tags["mlflow.source.git.commit"]) == 40 and tags["git_dirty"] in ("true", "false")
    assert tags["mlflow.source.name"] == "pipeline/train.py" and tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.user"] and tags["data_source"] == "mnist5k" and tags["stage"] == "train@ae"
    assert len(tags["params_hash"]) == 16
    tiny = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    assert ae.data.params["ae.epochs"] == str(tiny["ae"]["epochs"]) and ae.data.params["latent_dim"] == "10"
    # One pipeline execution: every run of the `dvc repro` carries the same tag.
    assert len({runs[name].data.tags["pipeline_execution"] for name in REPRESENTATIONS}) == 1
    assert tags["pipeline_execution"].startswith("dvc-")
    # Logged live: one entry per epoch, each stamped when its epoch ended (the AE's, then its DEC code's).
    history = client.get_metric_history(ae.info.run_id, "val/recon_mse")
    assert [m.step for m in history] == list(range(1, tiny["ae"]["epochs"] + tiny["ae"]["dec"]["epochs"] + 1))
    stamps = [m.timestamp for m in history]
    assert all(a < b for a, b in zip(stamps, stamps[1:])), stamps
    assert ae.data.metrics["timing/train_s"] > 0 and ae.data.metrics["timing/images_per_s"] > 0
    # Where it ran, as tags: what the run's exact bytes depend on besides the params.
    assert tags["device"] == "cpu" and tags["precision"] in ("fp32", "bf16") and int(tags["threads"]) >= 1
    assert tags["torch"].startswith("2.") and tags["processes"] == "1"
    # The data each run saw: one dataset per split, digest = that prepared file's checksum.
    contexts = {}
    for dataset_input in ae.inputs.dataset_inputs:
        context = {tag.key: tag.value for tag in dataset_input.tags}["mlflow.data.context"]
        contexts[context] = dataset_input.dataset
    assert sorted(contexts) == ["test", "train", "val"]
    for split, dataset in contexts.items():
        assert dataset.name == "mnist5k"
        assert dataset.digest == sha256_file(tiny_repo / f"data/prepared/{split}.npz")[:16]
    for name in REPRESENTATIONS:
        evaluated = json.loads((tiny_repo / f"metrics/eval/{name}.json").read_text())
        assert runs[name].data.metrics["test/kmeans_acc"] == pytest.approx(evaluated["test/kmeans_acc"]), name
    assert json.loads((tiny_repo / "models/ae.run.json").read_text())["run_id"] == ae.info.run_id
    logged = client.search_logged_models([experiment.experiment_id])  # registered models carry their scores
    scored = [m for m in logged if any(metric.key == "test/psnr_db" for metric in m.metrics or [])]
    assert len(scored) >= 2  # the AE's and the VAE's denoisers at least
    for name in MODELS:  # the run ended when its training ended, not when register logged into it
        assert runs[name].info.end_time / 1000 < (tiny_repo / f"models/{name}.pt").stat().st_mtime + 10, name


CHAMPION_CHECK = """
import json, sys, mlflow, numpy as np, torch
from unsupervised_mnist.data.dataset import load_split
from unsupervised_mnist.models.checkpoint import load_checkpoint
mlflow.set_tracking_uri(sys.argv[1])
decisions = json.load(open("metrics/register.json"))
x = load_split("test").noisy[:16]
with torch.no_grad():
    for model_name, decision in decisions.items():
        model = load_checkpoint(f"models/{model_name}.pt")
        for kind, name in decision["registered_models"].items():
            module = model.exports()[kind].eval()
            inputs = torch.randn((16, model.latent_dim), generator=torch.Generator().manual_seed(1)) \\
                if kind == "generator" else x
            served = np.asarray(mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(inputs.numpy()))
            print(name, list(served.shape), float(np.abs(served - module(inputs).numpy()).max()))
"""


def test_champion_loads_by_alias_in_a_fresh_process_and_matches_the_checkpoint(tiny_repo):
    """Every registered module of every model, loaded by `champion` in a process of its own (the pt2 format:
    no project code), gives what the checkpoint's own module gives."""
    result = subprocess.run([sys.executable, "-c", CHAMPION_CHECK, store(tiny_repo)], cwd=tiny_repo,
                            env=TRACKED_ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = {line.split()[0]: line.split(maxsplit=1)[1] for line in result.stdout.splitlines()}
    assert sorted(lines) == sorted(registered_names(tiny_repo))
    for name, rest in lines.items():
        shape, diff = rest.rsplit(" ", 1)
        assert float(diff) < 1e-5, name
        assert shape in ("[16, 1, 28, 28]", "[16, 10]"), (name, shape)
    assert lines["unsupervised-mnist-ae-denoiser"].startswith("[16, 1, 28, 28]")


def test_register_decisions_are_written_with_reasons(tiny_repo):
    decisions = json.loads((tiny_repo / "metrics/register.json").read_text())
    assert set(decisions) == set(MODELS)
    for decision in decisions.values():
        assert decision["promoted"] is True, decision
        assert decision["candidate_version"] == decision["champion_version"] == 1
        assert "no champion" in decision["reason"]
    assert decisions["ae"]["metric"] == "test/psnr_db"
    client = client_for(store(tiny_repo))
    for name in registered_names(tiny_repo):
        version = client.get_model_version_by_alias(name, "champion")
        assert str(version.version) == "1" and version.tags["git_commit"] and version.tags["data_checksum"]


def test_queued_experiment_lands_its_runs_in_the_workspace_store_as_one_group(tiny_repo, tmp_path):
    """A queued experiment runs in a temporary copy that DVC deletes: its runs and versions must still land in the
    workspace's store, tagged with the experiment and grouped as one pipeline execution. It changes a param only
    `register` reads (a gate's floor), so only `register` runs: new versions (a version's identity includes the
    commit, and the experiment has its own), runs of its own for the baselines (their identity includes the
    params), and the champions stay where they were (the same numbers beat nothing)."""
    repo = copy_of(tiny_repo, tmp_path)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tiny run")
    client = client_for(store(repo))
    experiment, _ = latest_runs(client)
    before = {run.info.run_id for run in client.search_runs([experiment.experiment_id])}
    dvc(repo, "exp", "run", "--queue", "-S", "register.gan.floor=2000", env=TRACKED_ENV)
    result = dvc(repo, "exp", "run", "--run-all", env=TRACKED_ENV)
    ran = {line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {"check", "register"}, result.stdout  # check reads every param; register the gate's floor

    new = [run for run in client.search_runs([experiment.experiment_id]) if run.info.run_id not in before]
    assert sorted(run.info.run_name for run in new) == ["pca", "pixels"]  # the models log into their training runs
    experiment_names = {run.data.tags.get("dvc_experiment") for run in new}  # DVC's name for the experiment
    assert len(experiment_names) == 1 and None not in experiment_names, experiment_names
    assert len({run.data.tags["pipeline_execution"] for run in new}) == 1  # one group in the UI
    assert all(".dvc/tmp" not in run.info.artifact_uri for run in new)
    assert not list((repo / ".dvc/tmp").rglob("mlflow.db"))
    names = registered_names(repo)
    assert version_counts(client, names) == {name: 2 for name in names}
    for name in names:
        assert str(client.get_model_version_by_alias(name, "candidate").version) == "2", name
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1", name


LOAD_BY_ALIAS = """
import sys, mlflow, numpy as np
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(f"models:/unsupervised-mnist-ae-denoiser@{sys.argv[2]}")
print(model.predict(np.zeros((3, 1, 28, 28), np.float32)).shape)
"""


def test_a_better_number_on_another_task_moves_that_tasks_champion_only(tiny_repo, tmp_path, monkeypatch):
    """Easier noise gives a higher PSNR: a version measured there must not become `champion` of the default
    task, only the champion of its own task, which loads by that task's alias."""
    import torch
    from helpers import parse

    from unsupervised_mnist.data.dataset import load_split
    from unsupervised_mnist.models.checkpoint import load_checkpoint
    from unsupervised_mnist.tracking.registry import ModelToRegister, register_model
    from unsupervised_mnist.tracking.runs import connect
    from unsupervised_mnist.tracking.task import Task

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tiny_repo)
    params = parse()
    client, experiment_id = connect(params)
    images = load_split("test").noisy[:4].numpy()
    model = load_checkpoint("models/ae.pt")
    decided = {}
    for version, (noise, psnr) in enumerate((("gaussian 0.5", 14.0), ("gaussian 0.1", 25.0)), start=1):
        with torch.no_grad():
            model.decoder[-1].bias.add_(0.01 * version)  # other weights: another version
        checkpoint = tmp_path / f"ae-{version}.pt"
        torch.save({"state_dict": model.state_dict()}, checkpoint)
        task = Task(f"mnist5k-gaussian-{noise.split()[1].replace('.', 'p')}-0000000{version}",
                    {"noise": noise, "test_split_sha256": f"{version:016x}"})
        run_id = client.create_run(experiment_id, run_name="ae").info.run_id
        item = ModelToRegister("ae", model, checkpoint, {"test/psnr_db": psnr}, images, task, run_id)
        decided[noise] = register_model(params, item, client, "data", "commit")
    assert decided["gaussian 0.5"]["promoted"] and decided["gaussian 0.1"]["promoted"]  # each its task's champion
    champion = client.get_model_version_by_alias("unsupervised-mnist-ae-denoiser", "champion")
    assert str(champion.version) == "1" and decided["gaussian 0.1"]["champion_alias"] == {
        "task": decided["gaussian 0.5"]["task"], "version": 1, "same_task": False}
    other = decided["gaussian 0.1"]["task_alias"]
    assert str(client.get_model_version_by_alias("unsupervised-mnist-ae-denoiser", other).version) == "2"
    loaded = subprocess.run([sys.executable, "-c", LOAD_BY_ALIAS, uri, other], cwd=tmp_path, env=TRACKED_ENV,
                            capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.strip() == "(3, 1, 28, 28)"


LOAD_CHAMPION = """
import sys, mlflow, numpy as np
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model("models:/unsupervised-mnist-ae-denoiser@champion")
print(model.predict(np.zeros((3, 1, 28, 28), np.float32)).shape)
"""
ADMIN = {"MLFLOW_AUTH_ADMIN_USERNAME": "pipeline-admin", "MLFLOW_AUTH_ADMIN_PASSWORD": "a-long-test-secret-9f3"}
RUNS_AND_ALIASES = """
import json, sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1], sys.argv[1])
experiment = client.get_experiment_by_name("unsupervised-mnist")
runs = sorted(r.info.run_name for r in client.search_runs([experiment.experiment_id]))
names = [m.name for m in client.search_registered_models()]
print(json.dumps([runs, {n: [str(client.get_model_version_by_alias(n, "champion").version),
                             len(client.search_model_versions(f"name='{n}'"))] for n in names}]))
"""


def test_team_server_refuses_anonymous_clients_and_registering_twice_doubles_nothing(tiny_repo, tmp_path):
    """The team set-up of docs/scale-out.md: `make mlflow-server` (PostgreSQL for runs, registry, users and
    permissions; MLflow's basic auth, its admin from the environment). An anonymous client can neither read,
    create a run nor move an alias; the pipeline, with MLFLOW_TRACKING_USERNAME / _PASSWORD, trains and registers
    there, and the champion loads back by alias. `register` run twice on this fresh store (the other models'
    training runs are in the pipeline's store) finds the runs and versions it made: one run per representation
    and one version per weights, however often it runs; nothing lands in the local store."""
    from mlflow.exceptions import MlflowException

    repo = copy_of(tiny_repo, tmp_path)
    local = client_for(store(repo))
    local_runs = len(local.search_runs([latest_runs(local)[0].experiment_id]))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with postgres_cluster() as database, make_server(
            repo, "mlflow-server", {"MLFLOW_BACKEND": database, "MLFLOW_ARTIFACTS": str(tmp_path / "artifacts"),
                                    "MLFLOW_PORT": str(port), "MLFLOW_SERVER_OPTS": "--workers 1"},
            {**TRACKED_ENV, **ADMIN, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, tmp_path / "server.log",
            ready=f"{url}/health"):
        credentials = {"MLFLOW_TRACKING_USERNAME": ADMIN["MLFLOW_AUTH_ADMIN_USERNAME"],
                       "MLFLOW_TRACKING_PASSWORD": ADMIN["MLFLOW_AUTH_ADMIN_PASSWORD"]}
        env = {**TRACKED_ENV, "MLFLOW_TRACKING_URI": url, **credentials}
        for stage, *args in (("train", MODELS[-1]), ("register",), ("register",)):
            run_stage(repo, stage, *args, env=env)
        anonymous = client_for(url)  # this process has no credentials
        with pytest.raises(MlflowException, match="401|credentials|Unauthorized"):
            anonymous.search_experiments()
        with pytest.raises(MlflowException, match="401|credentials|Unauthorized"):
            anonymous.create_run("0")
        with pytest.raises(MlflowException, match="401|credentials|Unauthorized"):
            anonymous.set_registered_model_alias("unsupervised-mnist-ae-denoiser", "champion", "1")
        loaded = subprocess.run([sys.executable, "-c", LOAD_CHAMPION, url], env={**TRACKED_ENV, **credentials},
                                cwd=tmp_path, capture_output=True, text=True)
        checked = subprocess.run([sys.executable, "-c", RUNS_AND_ALIASES, url], env={**TRACKED_ENV, **credentials},
                                 cwd=tmp_path, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.strip() == "(3, 1, 28, 28)"
    assert checked.returncode == 0, checked.stderr[-3000:]
    runs, champions = json.loads(checked.stdout)
    assert runs == sorted(REPRESENTATIONS)  # once each: the trained one's training run, a run each for the rest
    assert champions == {name: ["1", 1] for name in registered_names(repo)}
    assert len(local.search_runs([latest_runs(local)[0].experiment_id])) == local_runs  # nothing went local


def test_register_again_on_the_pipelines_store_doubles_nothing(tiny_repo, tmp_path):
    """A rerun of `register` on the store its runs are in finds them, and finds every version by its identity."""
    repo = copy_of(tiny_repo, tmp_path)
    run_stage(repo, "register", env=TRACKED_ENV)
    client = client_for(store(repo))
    experiment, _ = latest_runs(client)
    assert sorted(run.info.run_name for run in client.search_runs([experiment.experiment_id])) == \
        sorted(REPRESENTATIONS)
    assert version_counts(client, registered_names(repo)) == {name: 1 for name in registered_names(repo)}
    decisions = json.loads((repo / "metrics/register.json").read_text())
    assert all("already the champion" in d["reason"] for d in decisions.values()), decisions


SERVED_ALIKE = """
import json, sys, mlflow, numpy as np
mlflow.set_tracking_uri(sys.argv[1])
images = np.asarray(json.loads(sys.argv[2]), dtype=np.float32)
print(json.dumps(mlflow.pyfunc.load_model("models:/unsupervised-mnist-ae-denoiser@champion").predict(images).tolist()))
"""


def test_make_serve_answers_a_post_as_the_pyfunc_does(tiny_repo, tmp_path):
    """`make serve`: the champion denoiser over REST on 127.0.0.1; two noisy test images POSTed to /invocations
    come back as two images, equal to what mlflow.pyfunc gives in a process of its own."""
    import numpy as np

    images = np.load(tiny_repo / "data/prepared/test.npz")["x_noisy"][:2, None].astype(np.float32)
    port = free_port()
    env = {**TRACKED_ENV, "MLFLOW_TRACKING_URI": store(tiny_repo)}
    with make_server(tiny_repo, "serve", {"SERVE_PORT": str(port)}, env, tmp_path / "serve.log",
                     ready=f"http://127.0.0.1:{port}/ping"):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", method="POST",
                                         data=json.dumps({"inputs": images.tolist()}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            served = np.asarray(json.loads(response.read())["predictions"], dtype=np.float32)
    local = subprocess.run([sys.executable, "-c", SERVED_ALIKE, store(tiny_repo), json.dumps(images.tolist())],
                           env=TRACKED_ENV, capture_output=True, text=True)
    assert local.returncode == 0, local.stderr[-3000:]
    assert served.shape == (2, 1, 28, 28)
    assert np.array_equal(served, np.asarray(json.loads(local.stdout), dtype=np.float32))


def test_closed_port_fails_fast_and_leaves_outputs(tiny_repo):
    before = (tiny_repo / "metrics/register.json").read_bytes()
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    result = run_stage(tiny_repo, "register", env={**TRACKED_ENV, "MLFLOW_TRACKING_URI": uri}, check=False)
    assert time.monotonic() - start < 15
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: MLflow tracking server {uri} is unreachable"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (tiny_repo / "metrics/register.json").read_bytes() == before


def runs_table_url(repo, base: str, experiment_id: str) -> str:
    """What `make ui` prints (scripts/mlflow_ui_url.py), for this server."""
    result = subprocess.run([sys.executable, str(REPO / "scripts/mlflow_ui_url.py"), base], cwd=repo,
                            env={**TRACKED_ENV, "MLFLOW_TRACKING_URI": base}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    url = result.stdout.split(": ", 1)[1].split()[0]
    assert url == f"{base}/#/experiments/{experiment_id}/runs", result.stdout
    return url


def test_mlflow_ui_compares_the_runs(tiny_repo):
    require_system("Chromium", CHROMIUM.is_file(), "chromium")
    from playwright.sync_api import sync_playwright

    train_digest = sha256_file(tiny_repo / "data/prepared/train.npz")[:16]
    with mlflow_server(store(tiny_repo), tiny_repo / "mlruns", tiny_repo / "ui.log") as url:
        experiment, runs = latest_runs(client_for(url))
        names = ["ae", "vae", "gan", "pca"]
        ids = json.dumps([runs[name].info.run_id for name in names])
        page_url = f"{url}/#/compare-runs?runs={ids}&experiments={json.dumps([experiment.experiment_id])}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            page.goto(page_url)
            metric = page.get_by_text("test/kmeans_acc", exact=True).first
            metric.wait_for(timeout=60_000)
            # Scroll the page, not the metric table's own scroll area (that shifts its labels off their rows).
            page.get_by_text("Metrics", exact=True).first.scroll_into_view_if_needed()
            text = page.inner_text("body")
            (REPO / "reports").mkdir(exist_ok=True)
            page.screenshot(path=str(REPO / "reports/mlflow_compare.png"))
            # The runs table `make ui` points at: the training view, with Dataset and Source filled in.
            page.set_viewport_size({"width": 1600, "height": 900})
            page.goto(runs_table_url(tiny_repo, url, experiment.experiment_id))
            page.get_by_text("pixels", exact=True).first.wait_for(timeout=60_000)
            page.get_by_text(f"mnist5k ({train_digest})").first.wait_for(timeout=30_000)
            table = page.inner_text("body")
            page.screenshot(path=str(REPO / "reports/mlflow_runs.png"))
            browser.close()
    assert "Training runs" in table
    headers = table.split("Run Name", 1)[1][:200]
    assert "Dataset" in headers and "Source" in headers, headers
    assert table.count(f"mnist5k ({train_digest})") == 5  # every run's training set, with its digest
    assert table.count("train.py") == 3 and table.count("register.py") == 2  # where each run was created
    assert f"Comparing {len(names)} Runs" in text
    for name in names:
        assert f"\n{name}\t" in text or f"\t{name}\t" in text or f"\t{name}\n" in text, name
        # the compare view shows values under 1 to 3 decimals
        assert str(round(runs[name].data.metrics["test/kmeans_acc"], 3)) in text, name
