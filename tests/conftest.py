import os
import sys
from pathlib import Path

# Under pytest-xdist (`make test`: a worker per core), one torch thread per worker and per stage it starts: two
# workers of two threads each on two cores would spin against each other.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
from filelock import FileLock  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

from helpers import PARAMS_READ, REPRO_LOG, TRACKED_ENV, copy_repo, dvc, run_stage, write_params  # noqa: E402


def shared_folder(tmp_path_factory, worker_id: str, name: str, build) -> Path:
    """A folder made once per test run, whichever worker asks first: the others wait on its lock, then share it
    (pytest-xdist's own recipe for session fixtures). Read-only for the tests: those that change it copy it."""
    if worker_id == "master":  # no workers: an ordinary session fixture
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    root = tmp_path_factory.getbasetemp().parent  # this run's, shared by its workers
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def prepare_tiny(folder: Path) -> None:
    write_params(folder)
    for stage in ("check", "data", "prepare"):
        run_stage(folder, stage)


def repro_tiny(folder: Path) -> None:
    copy_repo(folder)
    write_params(folder)
    result = dvc(folder, "repro", env={**TRACKED_ENV, "UMNIST_PARAMS_READ": str(folder / PARAMS_READ)})
    (folder / REPRO_LOG).write_text(result.stdout + result.stderr)  # what the stages printed (git ignores .dvc/tmp)


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory, worker_id):
    """check, data and prepare, run as DVC runs them, on the tiny params: a project folder with prepared
    data, shared by the data, training and scale-out tests (read-only: tests that change it copy it)."""
    return shared_folder(tmp_path_factory, worker_id, "prepared", prepare_tiny)


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory, worker_id):
    """One real `dvc repro` on the tiny params (tests/tiny_params.yaml) in a fresh copy of the repository,
    tracked into the copy's sqlite:///mlflow.db, each stage noting the params it read (PARAMS_READ). Shared by
    the pipeline and MLflow tests (it is the slow part); tests that change it work on a copy, and those that
    run DVC in it share one worker (DVC locks its repository)."""
    return shared_folder(tmp_path_factory, worker_id, "repo", repro_tiny)


def pytest_collection_modifyitems(items):
    """Every test of a whole pipeline run is `slow`: `make test-fast` (pytest -m "not slow") leaves them out."""
    for item in items:
        if "tiny_repo" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
