"""Split the raw images (stratified, seeded), scale to [0, 1] and draw the fixed noisy val/test sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from unsupervised_mnist.config import Params
from unsupervised_mnist.data.dataset import to_unit
from unsupervised_mnist.data.noise import add_noise
from unsupervised_mnist.errors import DataError
from unsupervised_mnist.image_metrics import psnr_db
from unsupervised_mnist.io import save_npz
from unsupervised_mnist.seeding import derive_seed


def _stratified(labels: np.ndarray, share: float, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, taken) with `share` of each class taken; sorted so the order is canonical."""
    indices = np.arange(len(labels))
    try:
        kept, taken = train_test_split(indices, test_size=share, stratify=labels, random_state=seed % 2**32)
    except ValueError as exc:
        raise DataError(f"cannot split {len(labels)} images for {what}: {exc}") from None
    return np.sort(kept), np.sort(taken)


def split_source(splits: dict[str, tuple[np.ndarray, np.ndarray]], params: Params) -> dict[str, tuple]:
    """{train, val, test: (images uint8, labels uint8)}. An official test split is kept as it is."""
    data, seed = params.data, params.seed
    if data.subset_fraction < 1.0:
        subset = {}
        for name, (x, y) in splits.items():
            _, kept = _stratified(y, data.subset_fraction, derive_seed(seed, "subset", name), "data.subset_fraction")
            subset[name] = (x[kept], y[kept])
        splits = subset
    pool_x, pool_y = splits["train"]
    if "test" in splits:
        test = splits["test"]
    else:
        test_seed = derive_seed(seed, "split", "test")
        rest, test_idx = _stratified(pool_y, data.test_fraction, test_seed, "data.test_fraction")
        test = (pool_x[test_idx], pool_y[test_idx])
        pool_x, pool_y = pool_x[rest], pool_y[rest]
    train_idx, val_idx = _stratified(pool_y, data.val_fraction, derive_seed(seed, "split", "val"), "data.val_fraction")
    return {"train": (pool_x[train_idx], pool_y[train_idx]), "val": (pool_x[val_idx], pool_y[val_idx]), "test": test}


def prepare(splits: dict[str, tuple[np.ndarray, np.ndarray]], params: Params, out_dir: Path) -> dict:
    """Write {train,val,test}.npz and return the data metrics."""
    prepared = split_source(splits, params)
    metrics = {
        "source": params.data.source,
        "noise": {"kind": params.noise.kind, "level": params.noise.level},
        "splits": {},
    }
    for name, (images, labels) in prepared.items():
        arrays = {"x": images, "y": labels}
        if name != "train":  # training noise is redrawn every epoch by the engine
            clean = to_unit(images)
            generator = torch.Generator().manual_seed(derive_seed(params.seed, "noise", name))
            noisy = add_noise(clean, params.noise.kind, params.noise.level, generator)
            arrays["x_noisy"] = noisy.squeeze(1).numpy().astype(np.float16)
            if name == "test":
                noisy16 = torch.from_numpy(arrays["x_noisy"]).float().unsqueeze(1)
                metrics["test_noisy_psnr_db"] = round(float(psnr_db(noisy16, clean).mean()), 4)
        save_npz(out_dir / f"{name}.npz", **arrays)
        counts = np.bincount(labels, minlength=10)
        metrics["splits"][name] = {"n": int(len(labels)), "per_class": {str(c): int(n) for c, n in enumerate(counts)}}
    return metrics
