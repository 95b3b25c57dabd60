"""The two image-quality numbers every layer needs: per-image MSE and PSNR, on tensors in [0, 1].

At the bottom of the package so that data preparation (the noisy input's PSNR) and evaluation share
one definition without data importing evaluation.
"""

from __future__ import annotations

import torch

_EPS = 1e-10  # caps PSNR of a perfect reconstruction at 100 dB instead of inf


def mse_per_image(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (x - target).pow(2).flatten(1).mean(1)


def psnr_db(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, for a peak value of 1."""
    return -10.0 * torch.log10(mse_per_image(x, target) + _EPS)
