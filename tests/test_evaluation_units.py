"""Evaluation pieces with known answers."""

import numpy as np
import pytest
import torch

from unsupervised_mnist.evaluation.baselines import PCARepresentation, PixelRepresentation
from unsupervised_mnist.evaluation.clustering import cluster_accuracy, kmeans_scores
from unsupervised_mnist.evaluation.metrics import bce_per_image, psnr_db, ssim_per_image
from unsupervised_mnist.evaluation.sample_quality import classifier_score, frechet_distance, kernel_inception_distance
from unsupervised_mnist.models.vae import VAE


def test_acc_of_a_permuted_labelling_is_one():
    labels = np.repeat(np.arange(10), 7)
    clusters = (labels * 3 + 4) % 10  # a relabelling, not the identity
    assert cluster_accuracy(labels, clusters) == 1.0


def test_acc_of_a_hand_made_confusion_matrix():
    # Clusters x classes:  c0: 5 of class 0, 1 of class 1;  c1: 2 of class 0, 2 of class 1;  c2: 4 of class 2.
    # Best one-to-one map: c0->0 (5), c1->1 (2), c2->2 (4): 11 of 14.
    labels = np.array([0] * 5 + [1] + [0] * 2 + [1] * 2 + [2] * 4)
    clusters = np.array([0] * 6 + [1] * 4 + [2] * 4)
    assert cluster_accuracy(labels, clusters) == pytest.approx(11 / 14)


def test_kmeans_on_separated_blobs_is_perfect():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    codes = rng.normal(size=(200, 3)) * 0.05 + np.eye(4, 3)[labels] * 5
    assert kmeans_scores(codes, labels, 4, 5, 0) == {"acc": 1.0, "nmi": 1.0, "ari": 1.0}


def test_psnr_from_a_known_mse():
    target = torch.zeros(2, 1, 28, 28)
    x = torch.full((2, 1, 28, 28), 0.1)  # MSE 0.01 -> 20 dB
    assert psnr_db(x, target).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)


def test_ssim_is_one_for_identical_images_and_lower_with_noise():
    x = torch.rand(3, 1, 28, 28)
    assert ssim_per_image(x, x).tolist() == pytest.approx([1.0] * 3)
    assert (ssim_per_image((x + 0.3 * torch.randn_like(x)).clamp(0, 1), x) < 0.9).all()


def test_bce_per_image_of_a_perfect_binary_reconstruction_is_near_zero():
    x = (torch.rand(2, 1, 28, 28) > 0.5).float()
    assert bce_per_image(x, x).max() < 1e-3
    assert bce_per_image(torch.full_like(x, 0.5), x).tolist() == pytest.approx([784 * np.log(2)] * 2, rel=1e-5)


def test_fid_of_a_set_against_itself_is_zero_and_grows_with_noise():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(500, 16))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    distances = [frechet_distance(feats, feats + rng.normal(scale=s, size=feats.shape)) for s in (0.1, 0.5, 1.0)]
    assert 0 < distances[0] < distances[1] < distances[2]


def test_fid_of_a_set_against_itself_stays_zero_at_the_pipeline_sample_count():
    """At the count the pipeline compares (evaluate.n_samples, capped by mnist5k's 1,000 test images) and
    the classifier's feature size: sqrtm of a 128 x 128 product must not leave a visible residue."""
    from helpers import params_with

    from unsupervised_mnist.evaluation.sample_quality import reference_count
    from unsupervised_mnist.models.classifier import FEATURE_DIM

    n = reference_count(params_with({})["evaluate"]["n_samples"], 3600, 1000)
    assert n >= 1000
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(n, FEATURE_DIM)) @ rng.normal(size=(FEATURE_DIM, FEATURE_DIM)) * 0.3
    assert abs(frechet_distance(feats, feats)) < 1e-6
    other = rng.normal(size=(n, FEATURE_DIM)) @ rng.normal(size=(FEATURE_DIM, FEATURE_DIM)) * 0.3
    assert frechet_distance(feats, other) > 1.0


def test_kid_is_about_zero_for_the_same_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    assert abs(kernel_inception_distance(a, b)) < 0.05
    assert kernel_inception_distance(a, b + 1.0) > 0.5


def test_classifier_score_bounds():
    confident = np.eye(10)[np.arange(100) % 10]
    assert classifier_score(confident) == pytest.approx(10.0, rel=1e-6)
    assert classifier_score(np.full((100, 10), 0.1)) == pytest.approx(1.0)


def test_iwae_bound_is_tighter_than_the_elbo():
    torch.manual_seed(0)
    model = VAE(4, "mlp", [32], [8, 8]).eval()
    x = (torch.rand(16, 1, 28, 28) > 0.7).float()
    neg_elbo, neg_iwae = model.likelihood_bounds(x, x, 64, torch.Generator().manual_seed(0))
    assert neg_elbo.shape == neg_iwae.shape == (16,)
    assert (neg_iwae <= neg_elbo).all()
    one_elbo, one_iwae = model.likelihood_bounds(x, x, 1, torch.Generator().manual_seed(0))
    assert torch.allclose(one_elbo, one_iwae, rtol=0.02)  # K = 1: equal up to the KL's MC noise


def test_pca_baseline_reconstructs_data_of_its_own_rank_exactly_and_pixels_are_the_image():
    """Images that are mixtures of 10 patterns (plus their mean) lie in a 10-dimensional space: PCA at
    latent_dim 10 must give them back to float precision, and its codes must carry all 10 directions (a PCA that
    drops a component loses one pattern's share of every image). The pixel code is the image itself."""
    rng = np.random.default_rng(0)
    patterns = rng.uniform(0, 0.05, size=(10, 784))
    weights = rng.uniform(0, 1, size=(300, 10))
    train = torch.from_numpy((0.2 + weights @ patterns).astype(np.float32)).view(-1, 1, 28, 28)
    pca = PCARepresentation(train, 10, 0)
    codes = pca.encode(train)
    assert codes.shape == (300, 10) and pca.latent_dim == 10
    assert (codes.std(0) > 1e-3).all()  # every component carries variance
    assert torch.allclose(pca.decode(codes), train, atol=1e-5)
    fewer = PCARepresentation(train, 9, 0)
    assert not torch.allclose(fewer.decode(fewer.encode(train)), train, atol=1e-3)  # one component less: lossy
    pixels = PixelRepresentation()
    assert torch.equal(pixels.encode(train[:3]), train[:3].flatten(1)) and pixels.latent_dim == 784
    assert not hasattr(pixels, "decode") and not hasattr(pixels, "sample")  # clustering only


def test_umap_without_the_package_is_a_params_error(monkeypatch):
    import sys

    from unsupervised_mnist.errors import ParamsError
    from unsupervised_mnist.manifold import umap_embedding

    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    with pytest.raises(ParamsError, match=r"^params.yaml: evaluate.manifold='umap' needs umap-learn \(pip install "
                                          r"umap-learn\), or set evaluate.manifold: none$"):
        umap_embedding(np.zeros((10, 2)), 2, 5, 200, 0)


def test_dec_start_without_umap_names_the_training_setting(monkeypatch):
    """The AE's clustering phase starts from UMAP with ae.dec.init: umap; without umap-learn the error names that
    setting, not the evaluation's."""
    import sys

    from helpers import parse

    from unsupervised_mnist.errors import ParamsError
    from unsupervised_mnist.models.dec import initial_centres

    monkeypatch.setitem(sys.modules, "umap", None)
    params = parse({"ae.dec.init": "umap"})
    with pytest.raises(ParamsError, match=r"^params.yaml: ae.dec.init='umap' needs umap-learn \(pip install "
                                          r"umap-learn\), or set ae.dec.init: kmeans$"):
        initial_centres(torch.zeros(20, 3), params.ae.dec, 0, params.evaluate)


def test_manifold_step_scores_each_split_from_one_embedding_of_all_codes():
    """Three well separated blobs, each split drawn from all of them: UMAP + k-means and UMAP + GMM find
    them in every labelled split, and the training codes (no labels) only add points."""
    from helpers import params_with

    from unsupervised_mnist.config import parse_params
    from unsupervised_mnist.evaluation.evaluate import clustering_metrics

    rng = np.random.default_rng(4)
    centres = rng.normal(scale=20, size=(3, 6))

    def blobs(n):
        labels = np.arange(n) % 3
        return centres[labels] + rng.normal(size=(n, 6)), labels

    (train, _), (val, val_y), (test, test_y) = blobs(300), blobs(60), blobs(90)
    for clusterer in ("kmeans", "gmm"):
        params = parse_params(params_with({"evaluate.manifold": "umap", "evaluate.manifold_clusterer": clusterer,
                                           "evaluate.kmeans_inits": 2}))
        scores = clustering_metrics({"train": train, "val": val, "test": test}, {"val": val_y, "test": test_y}, params)
        assert {k: scores[k] for k in ("val/kmeans_acc", "test/kmeans_acc", "val/manifold_acc",
                                       "test/manifold_acc")} == dict.fromkeys(
            ("val/kmeans_acc", "test/kmeans_acc", "val/manifold_acc", "test/manifold_acc"), 1.0), clusterer


UMAP_IN_A_FRESH_PROCESS = """
import hashlib, numpy as np
from numba.core.dispatcher import Dispatcher
from unsupervised_mnist import manifold
codes = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
embedded = manifold.umap_embedding(codes, 2, 10, 50, 0)
import umap.layouts, umap.umap_
used = [d for m in (umap.layouts, umap.umap_) for d in vars(m).values()  # defined there, compiled when first called
        if isinstance(d, Dispatcher) and d.signatures and d.py_func.__module__ == m.__name__]
hits = sum(sum(d.stats.cache_hits.values()) for d in used)
misses = sum(sum(d.stats.cache_misses.values()) for d in used)
print(hashlib.sha256(embedded.tobytes()).hexdigest(), len(used), hits, misses)
"""


def test_umap_is_compiled_once_per_installation_not_once_per_process():
    """numba's on-disk cache holds umap-learn's compiled functions (manifold.py): a later
    process loads them instead of compiling them (every evaluate stage used to pay about 3 s for it), and
    computes the same embedding to the bit."""
    import subprocess
    import sys

    runs = [subprocess.run([sys.executable, "-c", UMAP_IN_A_FRESH_PROCESS], capture_output=True, text=True)
            for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    (first, used, _, _), (second, _, hits, misses) = (r.stdout.split() for r in runs)
    assert int(used) >= 4  # UMAP's graph and layout functions ran compiled...
    assert int(hits) >= int(used) and int(misses) == 0  # ...and the second process loaded every one of them
    assert first == second
