"""The PCA and raw-pixel baselines behind the models' interface, and loading any representation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

from unsupervised_mnist.models import load_checkpoint


class PCARepresentation:
    """sklearn PCA fit on the clean training images at the models' latent_dim; decode = inverse, clipped."""

    def __init__(self, train_clean: torch.Tensor, latent_dim: int, seed: int):
        self.latent_dim = latent_dim
        self.pca = PCA(n_components=latent_dim, random_state=seed % 2**32).fit(train_clean.flatten(1).numpy())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.pca.transform(x.flatten(1).cpu().numpy()).astype(np.float32))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        images = self.pca.inverse_transform(z.cpu().numpy()).astype(np.float32)
        return torch.from_numpy(images).clamp(0, 1).view(-1, 1, 28, 28)


class PixelRepresentation:
    """The raw pixels as a 784-dimensional code: the clustering baseline."""

    latent_dim = 28 * 28

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z.view(-1, 1, 28, 28).clamp(0, 1)


def load_representation(name: str, train_clean: torch.Tensor, latent_dim: int, seed: int, device: torch.device):
    if name == "pca":
        return PCARepresentation(train_clean, latent_dim, seed)
    if name == "pixels":
        return PixelRepresentation()
    model = load_checkpoint(Path("models") / f"{name}.pt", device)
    # Channels-last weights for the decoder's transposed convolutions: oneDNN's faster kernels on the CPU (the
    # VAE's 64 decodes per image for its IWAE bound: 26 % less time) with the same bytes out. Not for the
    # encoders: their strided convolutions then round differently, and UMAP amplifies the last bit.
    decoder = getattr(model, "decoder", None) or model.generator
    decoder.to(memory_format=torch.channels_last)
    return model
