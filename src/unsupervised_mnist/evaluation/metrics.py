"""Per-image image-quality metrics on tensors in [0, 1]."""

from __future__ import annotations

import torch

_EPS = 1e-10  # caps PSNR of a perfect reconstruction at 100 dB instead of inf


def mse_per_image(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (x - target).pow(2).flatten(1).mean(1)


def psnr_db(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, for a peak value of 1."""
    return -10.0 * torch.log10(mse_per_image(x, target) + _EPS)


def bce_per_image(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over the pixels of each image (nats), as the VAE's likelihood term."""
    x = x.clamp(1e-6, 1 - 1e-6)
    return -(target * x.log() + (1 - target) * (1 - x).log()).flatten(1).sum(1)


def ssim_per_image(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity (Wang et al., 2004) per image, from scikit-image, 7x7 windows."""
    from skimage.metrics import structural_similarity

    a, b = x.squeeze(1).double().cpu().numpy(), target.squeeze(1).double().cpu().numpy()
    return torch.tensor([structural_similarity(u, v, data_range=1.0) for u, v in zip(a, b)])
