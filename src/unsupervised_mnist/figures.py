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


def latent_2d(path: Path, codes: np.ndarray, labels: np.ndarray, title: str) -> None:
    """Codes projected to their first two principal components, coloured by label."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, a faster import
    from sklearn.decomposition import PCA

    points = codes if codes.shape[1] == 2 else PCA(n_components=2, random_state=0).fit_transform(codes)
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.subplots()
    scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=4, alpha=0.7)
    ax.legend(*scatter.legend_elements(), loc="best", fontsize=6, markerscale=0.7, title="label")
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
                                labels: torch.Tensor, codes: np.ndarray, samples: torch.Tensor | None) -> None:
    """recon.png, interpolation.png, samples.png and latent_2d.png of one representation (evaluate@<name>)."""
    first = first_of_each_class(labels)
    x, xn = clean[first], noisy[first]
    if name != "pixels":
        save_rows(out_dir / "recon.png", [x, xn, rep.decode(rep.encode(xn)), rep.decode(rep.encode(x))])
        pairs = first[:5], first.roll(-1)[:5]
        save_rows(out_dir / "interpolation.png", interpolation_rows(rep, clean[pairs[0]], clean[pairs[1]]))
    if samples is not None:
        save_rows(out_dir / "samples.png", list(samples[:64].view(8, 8, 1, 28, 28)))
    latent_2d(out_dir / "latent_2d.png", codes, labels.numpy(), f"{name}: test codes (first 2 PCs)")
