"""k-means on codes, scored against the labels: ACC (Hungarian matching), NMI, ARI."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, confusion_matrix, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture


def cluster_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Best accuracy over one-to-one maps from clusters to classes (Hungarian matching, as in DEC)."""
    n = max(labels.max(), clusters.max()) + 1
    counts = confusion_matrix(clusters, labels, labels=np.arange(n))  # rows: clusters, columns: classes
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(labels))


def cluster(codes: np.ndarray, k: int, method: str, n_init: int, seed: int) -> np.ndarray:
    """k clusters of the rows of `codes`: k-means, or a full-covariance Gaussian mixture (the better fit
    to UMAP's elongated clusters, as in N2D), each with `n_init` seeded restarts."""
    codes = codes.astype(np.float64)
    if method == "gmm":
        return GaussianMixture(n_components=k, covariance_type="full", n_init=n_init,
                               random_state=seed % 2**32).fit_predict(codes)
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed % 2**32).fit_predict(codes)


def cluster_scores(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    return {
        "acc": cluster_accuracy(labels, clusters),
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ari": float(adjusted_rand_score(labels, clusters)),
    }


def kmeans_scores(codes: np.ndarray, labels: np.ndarray, k: int, n_init: int, seed: int) -> dict[str, float]:
    return cluster_scores(labels, cluster(codes, k, "kmeans", n_init, seed))
