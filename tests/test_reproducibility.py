"""Same params, same code, two separate clones: byte-identical metrics/ (CPU).

The second clone also plays the team set-up of docs/scale-out.md: it tracks into an `mlflow server`
backed by a throwaway PostgreSQL cluster, and the champion is loaded back from that server by alias.
(One pipeline run serves both checks: a tiny `dvc repro` is the slow part of the suite.)"""

import subprocess
import sys

import pytest
from conftest import TINY_TRAINING
from helpers import TRACKED_ENV, copy_repo, dvc, mlflow_server, postgres_cluster, write_params

pytestmark = pytest.mark.slow

LOAD_CHAMPION = """
import sys, mlflow, numpy as np
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model("models:/unsupervised-mnist-ae-denoiser@champion")
print(model.predict(np.zeros((3, 1, 28, 28), np.float32)).shape)
"""


def test_second_clone_on_a_postgres_mlflow_server_gives_byte_identical_metrics(tiny_repo, tmp_path):
    other = copy_repo(tmp_path / "clone")
    write_params(other, TINY_TRAINING)
    with postgres_cluster() as database, \
            mlflow_server(database, tmp_path / "artifacts", tmp_path / "server.log") as url:
        dvc(other, "repro", env={**TRACKED_ENV, "MLFLOW_TRACKING_URI": url})  # a fresh store, like the first
        loaded = subprocess.run([sys.executable, "-c", LOAD_CHAMPION, url], env=TRACKED_ENV,
                                capture_output=True, text=True)
        from mlflow import MlflowClient

        client = MlflowClient(url, url)
        experiment = client.get_experiment_by_name("unsupervised-mnist")
        names = {run.info.run_name for run in client.search_runs([experiment.experiment_id])}
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.strip() == "(3, 1, 28, 28)"
    assert {"ae", "vae", "gan", "pca", "pixels"} <= names
    assert not (other / "mlflow.db").exists()  # nothing went to a local store

    first = {p.relative_to(tiny_repo): p.read_bytes() for p in sorted((tiny_repo / "metrics").rglob("*.json"))}
    second = {p.relative_to(other): p.read_bytes() for p in sorted((other / "metrics").rglob("*.json"))}
    assert len(first) == 11  # data, classifier, register, 3 train, 5 eval
    assert first.keys() == second.keys()
    for path in first:
        assert first[path] == second[path], path
