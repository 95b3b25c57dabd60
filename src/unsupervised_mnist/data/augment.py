"""Random small shifts and rotations of the clean images, drawn on the device once per epoch.

Why: an autoencoder that must map a digit and its slightly moved copy to nearby codes learns codes
that group by class rather than by position and slant (the trick behind DEC-DA, Guo et al., 2018).
The corruption for denoising is added after this, to the moved image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(images: torch.Tensor, max_shift_px: float, max_rotate_deg: float,
                  generator: torch.Generator) -> torch.Tensor:
    """Each image moved by up to `max_shift_px` pixels in x and y and turned by up to `max_rotate_deg`
    degrees (uniform draws, bilinear resampling, zeros outside). No change when both are 0."""
    if max_shift_px == 0 and max_rotate_deg == 0:
        return images
    n, device = len(images), images.device
    angle = (torch.rand(n, generator=generator, device=device) * 2 - 1) * math.radians(max_rotate_deg)
    # affine_grid works in [-1, 1] coordinates: a shift of s pixels is 2 s / width.
    shift = (torch.rand((n, 2), generator=generator, device=device) * 2 - 1) * (2 * max_shift_px / images.shape[-1])
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
