"""Autoencoder: stacked (MLP) or convolutional, trained as a denoising AE (Vincent et al., 2008). With `clusters`
it also holds a clustering code: a copy of its encoder that DEC (Xie et al., 2016) refines towards cluster
centres, so that the denoiser itself stays untouched."""

from __future__ import annotations

import torch
from torch import nn

from unsupervised_mnist.models.blocks import decoder, encoder


class AutoEncoder(nn.Module):
    def __init__(self, latent_dim: int, arch: str, hidden: list[int], channels: list[int], fc: int = 0,
                 clusters: int = 0):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = encoder(arch, latent_dim, hidden, channels, fc)
        self.decoder = decoder(arch, latent_dim, hidden, channels, fc)
        if clusters:
            self.cluster_encoder = encoder(arch, latent_dim, hidden, channels, fc)
            self.centres = nn.Parameter(torch.zeros(clusters, latent_dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def cluster_code(self, x: torch.Tensor) -> torch.Tensor:
        """The clustering code (a second code, like the GAN's discriminator features)."""
        return self.cluster_encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training pass: image -> logits of its reconstruction (tracking/exports.py wraps the
        sigmoid image version for export)."""
        return self.decoder(self.encoder(x))
