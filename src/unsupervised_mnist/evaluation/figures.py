"""The figures of one representation: reconstructions, samples, the latent space, interpolations."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from unsupervised_mnist.figures import save_rows
from unsupervised_mnist.io import write_bytes


def latent_2d(path: Path, codes: np.ndarray, labels: np.ndarray, title: str) -> None:
    """Codes projected to their first two principal components, coloured by label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    points = codes if codes.shape[1] == 2 else PCA(n_components=2, random_state=0).fit_transform(codes)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=4, alpha=0.7)
    ax.legend(*scatter.legend_elements(), loc="best", fontsize=6, markerscale=0.7, title="label")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


def interpolation_rows(rep, starts: torch.Tensor, ends: torch.Tensor, steps: int = 10) -> list[torch.Tensor]:
    """Decode straight lines between the codes of pairs of images: one row per pair."""
    z0, z1 = rep.encode(starts), rep.encode(ends)
    weights = torch.linspace(0, 1, steps, device=z0.device).view(-1, 1)
    return [rep.decode(a + weights * (b - a)) for a, b in zip(z0, z1)]


def save_figures(out_dir: Path, name: str, rep, clean: torch.Tensor, noisy: torch.Tensor, labels: torch.Tensor,
                 codes: np.ndarray, samples: torch.Tensor | None) -> None:
    first_of_class = torch.stack([(labels == c).nonzero()[0, 0] for c in labels.unique()])
    x, xn = clean[first_of_class], noisy[first_of_class]
    if name != "pixels":
        save_rows(out_dir / "recon.png", [x, xn, rep.decode(rep.encode(xn)), rep.decode(rep.encode(x))])
        pairs = first_of_class[:5], first_of_class.roll(-1)[:5]
        save_rows(out_dir / "interpolation.png", interpolation_rows(rep, clean[pairs[0]], clean[pairs[1]]))
    if samples is not None:
        save_rows(out_dir / "samples.png", list(samples[:64].view(8, 8, 1, 28, 28)))
    latent_2d(out_dir / "latent_2d.png", codes, labels.numpy(), f"{name}: test codes (first 2 PCs)")
