"""Image grids written atomically as PNG (torchvision's make_grid, PIL's encoder)."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from unsupervised_mnist.io import write_bytes


def save_rows(path: str | Path, rows: list[torch.Tensor], padding: int = 2) -> None:
    """One grid row per tensor of (N, 1, 28, 28) images in [0, 1]; all rows the same length."""
    from torchvision.utils import make_grid, save_image

    images = torch.cat([r.detach().float().cpu().clamp(0, 1) for r in rows])
    grid = make_grid(images, nrow=len(rows[0]), padding=padding, pad_value=1.0)
    buffer = io.BytesIO()
    save_image(grid, buffer, format="png")
    write_bytes(path, buffer.getvalue())
