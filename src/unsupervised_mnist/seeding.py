"""One seed in params.yaml drives everything: each consumer gets its own stream, derived by name.

Deriving by name (rather than seed+1, seed+2, ...) keeps streams independent and lets a new
consumer appear without shifting the numbers of the existing ones.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def derive_seed(seed: int, *names: str | int) -> int:
    """A 63-bit seed for the stream called `names` (e.g. ("noise", "test") or ("epoch", 3))."""
    words = [seed] + [zlib.crc32(str(n).encode()) for n in names]
    return int(np.random.SeedSequence(words).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


def torch_generator(seed: int, *names: str | int, device: str | torch.device = "cpu") -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, *names))
    return generator
