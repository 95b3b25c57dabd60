"""Per-image image-quality metrics on tensors in [0, 1] (MSE and PSNR live one layer down, in image_metrics)."""

from __future__ import annotations

import torch

from unsupervised_mnist.image_metrics import mse_per_image, psnr_db

__all__ = ["bce_per_image", "mse_per_image", "psnr_db", "ssim_per_image"]


def bce_per_image(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over the pixels of each image (nats), as the VAE's likelihood term."""
    x = x.clamp(1e-6, 1 - 1e-6)
    return -(target * x.log() + (1 - target) * (1 - x).log()).flatten(1).sum(1)


def ssim_per_image(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity (Wang et al., 2004) per image, from scikit-image, 7x7 windows."""
    from skimage.metrics import structural_similarity

    a, b = x.squeeze(1).double().cpu().numpy(), target.squeeze(1).double().cpu().numpy()
    return torch.tensor([structural_similarity(u, v, data_range=1.0) for u, v in zip(a, b)])
