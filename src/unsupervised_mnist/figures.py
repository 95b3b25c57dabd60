"""Every figure the pipeline writes, as PNG, atomically: image grids (scikit-image's montage), the latent
space (matplotlib), interpolations. Libraries are imported where they are used: a stage pays only for
the figures it draws."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from unsupervised_mnist.io import write_bytes


def first_of_each_class(labels: torch.Tensor) -> torch.Tensor:
    """Index of the first image of every class present, in class order: the rows of the example figures."""
    return torch.stack([(labels == c).nonzero()[0, 0] for c in labels.unique()])


def save_rows(path: str | Path, rows: list[torch.Tensor], padding: int = 2) -> None:
    """One grid row per tensor of (N, 1, 28, 28) images in [0, 1]; all rows the same length, white padding.
    scikit-image's montage rather than torchvision's make_grid: the same grid, and importing torchvision
    costs each stage about a second (it loads torch's compiler)."""
    from PIL import Image
    from skimage.util import montage

    images = torch.cat([r.detach().float().cpu().clamp(0, 1) for r in rows]).squeeze(1).numpy()
    grid = montage(images, grid_shape=(len(rows), len(rows[0])), padding_width=padding, fill=1.0)
    buffer = io.BytesIO()
    Image.fromarray((grid * 255 + 0.5).clip(0, 255).astype(np.uint8)).save(buffer, format="png")
    write_bytes(path, buffer.getvalue())


def latent_2d(path: Path, points: np.ndarray, labels: np.ndarray, title: str) -> None:
    """A 2-D embedding of the codes, a colour per class, each class named at its median point."""
    from matplotlib import patheffects
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, a faster import

    fig = Figure(figsize=(5, 5), dpi=120)
    ax = fig.subplots()
    ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=5, alpha=0.6,
               linewidths=0)
    outline = [patheffects.withStroke(linewidth=3, foreground="white")]
    for label in np.unique(labels):
        x, y = np.median(points[labels == label], axis=0)
        ax.text(x, y, str(label), fontsize=13, weight="bold", ha="center", va="center", path_effects=outline)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
    write_bytes(path, buffer.getvalue())


def interpolation_rows(rep, starts: torch.Tensor, ends: torch.Tensor, steps: int = 10) -> list[torch.Tensor]:
    """Decode straight lines between the codes of pairs of images: one row per pair."""
    z0, z1 = rep.encode(starts), rep.encode(ends)
    weights = torch.linspace(0, 1, steps, device=z0.device).view(-1, 1)
    return [rep.decode(a + weights * (b - a)) for a, b in zip(z0, z1)]


def save_representation_figures(out_dir: Path, name: str, rep, clean: torch.Tensor, noisy: torch.Tensor,
                                labels: torch.Tensor, embedded: np.ndarray, how: str,
                                samples: torch.Tensor | None) -> None:
    """recon.png and interpolation.png (where it decodes), samples.png (where it generates) and latent_2d.png
    (`embedded`: the test codes in 2-D, made `how`) of one representation (evaluate@<name>)."""
    first = first_of_each_class(labels)
    x, xn = clean[first], noisy[first]
    if hasattr(rep, "decode"):
        save_rows(out_dir / "recon.png", [x, xn, rep.decode(rep.encode(xn)), rep.decode(rep.encode(x))])
        pairs = first[:5], first.roll(-1)[:5]
        save_rows(out_dir / "interpolation.png", interpolation_rows(rep, clean[pairs[0]], clean[pairs[1]]))
    if samples is not None:
        save_rows(out_dir / "samples.png", list(samples[:64].view(8, 8, 1, 28, 28)))
    latent_2d(out_dir / "latent_2d.png", embedded, labels.numpy(), f"{name}: test codes, {how}")
