"""Read a prepared split back: data/prepared/<split>.npz."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unsupervised_mnist.io import load_npz

PREPARED_DIR = Path("data/prepared")


def to_unit(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1]."""
    return torch.from_numpy(np.array(images, dtype=np.float32)).div_(255.0).unsqueeze(1)


@dataclass(frozen=True)
class Split:
    clean: torch.Tensor  # (N, 1, 28, 28) float32 in [0, 1]
    labels: torch.Tensor  # (N,) int64
    noisy: torch.Tensor | None  # fixed noisy copy for val/test; None for train (noise drawn per epoch)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows: np.ndarray) -> Split:
        index = torch.from_numpy(rows)
        return Split(self.clean[index], self.labels[index], None if self.noisy is None else self.noisy[index])


def load_split(name: str, prepared_dir: Path = PREPARED_DIR) -> Split:
    arrays = load_npz(prepared_dir / f"{name}.npz", required=("x", "y"))
    noisy = arrays.get("x_noisy")
    return Split(
        clean=to_unit(arrays["x"]),
        labels=torch.from_numpy(arrays["y"].astype(np.int64)),
        noisy=None if noisy is None else torch.from_numpy(noisy.astype(np.float32)).unsqueeze(1),
    )
