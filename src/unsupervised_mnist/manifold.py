"""The manifold step of N2D (McConville et al., 2019): UMAP of a set of codes to a few dimensions, where
clusters separate better than in the code space itself. Low in the package: evaluation clusters the
embedding, and the AE's clustering phase starts from it."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.neighbors import NearestNeighbors

from unsupervised_mnist.errors import ParamsError

EXACT_KNN_MAX = 20_000  # points; above, UMAP's own approximate neighbours
UMAP_MODULES = ("umap.umap_", "umap.layouts", "umap.utils", "umap.spectral", "umap.distances", "umap.sparse")


def _import_umap(instead: str):
    """umap-learn, with numba's on-disk cache turned on for its jitted functions. umap-learn decorates most
    of them without `cache=True`, so every fresh process compiled them again (about 3 s per evaluate stage);
    `enable_caching()` is what numba's own `cache=True` calls, so the compiled code is now kept beside the
    package (numba's usual cache place, or NUMBA_CACHE_DIR) and compiled once per installation. The machine
    code is the same, so the embedding is the same to the bit."""
    try:
        import umap  # lazy: umap-learn pulls in numba, slow to import
    except ImportError:
        setting = instead.split(":")[0]
        raise ParamsError(f"params.yaml: {setting}='umap' needs umap-learn (pip install umap-learn), "
                          f"or set {instead}") from None
    import importlib

    from numba.core.dispatcher import Dispatcher

    for name in UMAP_MODULES:
        for obj in vars(importlib.import_module(name)).values():
            if isinstance(obj, Dispatcher) and not obj.signatures:  # not compiled yet: the cache applies
                obj.enable_caching()
    return umap


def compile_umap() -> None:
    """Fill numba's cache with everything a UMAP embedding compiles (pynndescent compiles its functions at its
    first import, about 10 s; UMAP's own take about 4 s more): `make install` calls this once, so that the
    first evaluate stage of a new installation does not pay for it."""
    umap_embedding(np.random.default_rng(0).normal(size=(64, 4)), 2, 5, 10, 0)


def umap_embedding(codes: np.ndarray, n_components: int, n_neighbors: int, n_epochs: int, seed: int,
                   instead: str = "evaluate.manifold: none") -> np.ndarray:
    """N2D-style manifold step (McConville et al., 2019): UMAP of the codes to a few dimensions. `instead`: the
    setting that does without UMAP, named in the error when umap-learn is not installed."""
    umap = _import_umap(instead)
    codes = codes.astype(np.float32)
    knn = None
    if len(codes) <= EXACT_KNN_MAX:
        # Exact neighbours from sklearn: UMAP would switch to NN-descent above 4,096 points, whose numba
        # compilation alone costs about 20 s in every fresh process (measured: 30.6 s -> 10.5 s per call
        # on 5,000 codes).
        distances, indices = NearestNeighbors(n_neighbors=n_neighbors).fit(codes).kneighbors(codes)
        knn = (indices, distances.astype(np.float32), None)
    reducer = umap.UMAP(n_components=n_components, n_neighbors=n_neighbors, min_dist=0.0, n_epochs=n_epochs,
                        random_state=seed % 2**32, n_jobs=1, precomputed_knn=knn or (None, None, None))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="precomputed_knn")  # "transform will be unavailable": unused
        warnings.filterwarnings("ignore", message=".*cannot cache")  # numba: a few functions cannot be cached
        return reducer.fit_transform(codes)
