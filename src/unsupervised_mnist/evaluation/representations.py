"""Every representation evaluation scores, by name: a baseline (evaluation/baselines.py) or a trained model
read from models/<name>.pt."""

from __future__ import annotations

from pathlib import Path

import torch

from unsupervised_mnist.evaluation.baselines import BASELINES
from unsupervised_mnist.models.checkpoint import load_checkpoint


def load_representation(name: str, train_clean: torch.Tensor, latent_dim: int, seed: int, device: torch.device):
    if name in BASELINES:
        return BASELINES[name](train_clean, latent_dim, seed)
    model = load_checkpoint(Path("models") / f"{name}.pt", device)
    # Channels-last weights for the decoder's transposed convolutions: oneDNN's faster kernels on the CPU (the
    # VAE's 64 decodes per image for its IWAE bound: 26 % less time) with the same bytes out. Not for the
    # encoders: their strided convolutions then round differently, and UMAP amplifies the last bit.
    model.decoder.to(memory_format=torch.channels_last)
    return model
