"""Corruptions for denoising, drawn with torch so that the same code runs in `prepare` (CPU, once,
for the fixed val/test sets) and in the training engine (on the device, fresh every epoch)."""

from __future__ import annotations

import torch

NOISE_KINDS = ("gaussian", "salt_pepper", "mask")


def add_noise(x: torch.Tensor, kind: str, level: float, generator: torch.Generator) -> torch.Tensor:
    """Corrupt images `x` in [0, 1]; the result is clipped to [0, 1].

    gaussian: x + level * N(0, 1).   salt_pepper: each pixel, with probability `level`, becomes 0 or 1
    (even odds).   mask: each pixel, with probability `level`, becomes 0 (dropout-style masking).
    """
    if kind == "gaussian":
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + level * noise).clamp_(0.0, 1.0)
    hit = torch.rand(x.shape, generator=generator, device=x.device) < level
    if kind == "salt_pepper":
        salt = torch.rand(x.shape, generator=generator, device=x.device) < 0.5
        return torch.where(hit, salt.to(x.dtype), x)
    if kind == "mask":
        return x.masked_fill(hit, 0.0)
    raise ValueError(f"unknown noise kind {kind!r}, expected one of {', '.join(NOISE_KINDS)}")
