import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import PARAMS_READ, REPRO_LOG, TRACKED_ENV, copy_repo, dvc, run_stage, write_params  # noqa: E402


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory):
    """check, data and prepare, run as DVC runs them, on the tiny params: a project folder with prepared
    data, shared by the data, training and scale-out tests (read-only: tests that change it copy it)."""
    folder = tmp_path_factory.mktemp("prepared")
    write_params(folder)
    for stage in ("check", "data", "prepare"):
        run_stage(folder, stage)
    return folder


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory):
    """One real `dvc repro` on the tiny params (tests/tiny_params.yaml) in a fresh copy of the repository,
    tracked into the copy's sqlite:///mlflow.db, each stage noting the params it read (PARAMS_READ). Shared by
    the pipeline and MLflow tests (it is the slow part); tests that change it work on a copy."""
    folder = copy_repo(tmp_path_factory.mktemp("repo"))
    write_params(folder)
    result = dvc(folder, "repro", env={**TRACKED_ENV, "UMNIST_PARAMS_READ": str(folder / PARAMS_READ)})
    (folder / REPRO_LOG).write_text(result.stdout + result.stderr)  # what the stages printed (git ignores .dvc/tmp)
    return folder


def pytest_collection_modifyitems(items):
    """Every test of a whole pipeline run is `slow`: `make test-fast` (pytest -m "not slow") leaves them out."""
    for item in items:
        if "tiny_repo" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
