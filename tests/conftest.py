import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import TRACKED_ENV, copy_repo, dvc, write_params  # noqa: E402

# The whole pipeline on tiny params: a few hundred images, a few epochs. The GAN's gate floor is
# loosened so that one epoch of it still becomes champion and every model has one.
TINY_TRAINING = {"train.batch_size": 32, "ae.epochs": 6, "vae.epochs": 2, "gan.epochs": 1, "classifier.epochs": 1,
                 "evaluate.kmeans_inits": 2, "evaluate.iwae_k": 8, "register.gan.floor": 1000.0}


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory):
    """One real `dvc repro` in a fresh copy of the repository, tracked into the copy's sqlite:///mlflow.db.
    Shared by the pipeline and MLflow tests (it is the slow part); tests that change it work on a copy."""
    folder = copy_repo(tmp_path_factory.mktemp("repo"))
    write_params(folder, TINY_TRAINING)
    dvc(folder, "repro", env=TRACKED_ENV)
    return folder
