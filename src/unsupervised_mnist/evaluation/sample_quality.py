"""Quality of generated images in a classifier's feature space: FID, KID, classifier score, histogram.

The features are the penultimate layer of the `classifier` stage's CNN, trained on the clean training
split of the same data set (so the numbers are comparable across models, not to Inception-based FIDs).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


def reference_count(n_samples: int, train_size: int, test_size: int) -> int:
    """Sample count for FID/KID: `evaluate.n_samples`, capped by the test split and by half the training
    split, and the same for generated samples and for the real-vs-real reference (FID's bias depends on
    the count). The reference's real images are the last `n` training images, which the classifier does
    not train on (see `reference_holdout`)."""
    return min(n_samples, train_size // 2, test_size)


def real_rows(size: int, n: int, seed: int) -> np.ndarray:
    """`n` rows of a split of `size` images, drawn at random (seeded): splits are stored class by class,
    so the first `n` rows would not be a sample of the data."""
    return np.sort(np.random.default_rng(seed).permutation(size)[:n])


def reference_holdout(train_size: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(the classifier's training rows, the reference's real rows) of the training split: features of
    images the classifier has learnt sit tighter than those of unseen ones, so a reference drawn from
    them would put real and real far apart (FID 44 for training vs test images on mnist5k)."""
    held_out = real_rows(train_size, n, seed)
    return np.setdiff1d(np.arange(train_size), held_out), held_out


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (Heusel et al., 2017)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():  # a singular product: regularise, as the reference implementation does
        eps = np.eye(len(cov_a)) * 1e-6
        root = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root.real))


def kernel_inception_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3 (Binkowski et al., 2018)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    d, m, n = a.shape[1], len(a), len(b)
    k_aa, k_bb, k_ab = ((x @ y.T / d + 1) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    return float((k_aa.sum() - np.trace(k_aa)) / (m * (m - 1)) + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
                 - 2 * k_ab.mean())


def classifier_score(probs: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))): the Inception Score with our classifier; at most the class count."""
    probs = probs.astype(np.float64).clip(1e-12, 1)
    marginal = probs.mean(0, keepdims=True)
    return float(np.exp((probs * (np.log(probs) - np.log(marginal))).sum(1).mean()))


def sample_quality(feats: np.ndarray, probs: np.ndarray, real_feats: np.ndarray) -> dict[str, float]:
    counts = np.bincount(probs.argmax(1), minlength=probs.shape[1])
    return {
        "fid": frechet_distance(feats, real_feats),
        "kid": kernel_inception_distance(feats, real_feats),
        "classifier_score": classifier_score(probs),
        **{f"sample_class_share/{c}": float(n / len(probs)) for c, n in enumerate(counts)},
    }
