"""DCGAN sized for 28x28 (Radford et al., 2016) with an encoder trained to invert the generator.

The encoder E maps an image to the z that G would turn back into it, so the GAN has `encode`/`decode`
like the autoencoders and takes part in reconstruction and clustering. E is trained jointly with G on
two terms: latent regression on G's own samples, ||E(G(z)) - z||^2, and image reconstruction of real
(possibly noisy) images, G(E(x)) ~ x (as in "inverting the generator" and the ALI/BiGAN line).
The discriminator's penultimate features are a second code (`features`).
"""

from __future__ import annotations

import torch
from torch import nn

from unsupervised_mnist.models.blocks import conv_decoder, conv_encoder


class Discriminator(nn.Module):
    def __init__(self, channels: list[int], feature_dim: int = 256, spectral_norm: bool = False, dropout: float = 0.0):
        super().__init__()
        # No batch norm: it would break the gradient penalty of WGAN-GP (Gulrajani et al., 2017).
        self.body = nn.Sequential(conv_encoder(feature_dim, channels, leaky=True), nn.LeakyReLU(0.2))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, 1))
        if spectral_norm:  # every layer 1-Lipschitz (Miyato et al., 2018): steadier D, no penalty term
            for layer in [*self.body.modules(), *self.head.modules()]:
                if isinstance(layer, (nn.Conv2d, nn.Linear)):
                    nn.utils.parametrizations.spectral_norm(layer)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(1)


class GAN(nn.Module):
    def __init__(self, latent_dim: int, channels: list[int], spectral_norm: bool = False, fc: int = 0,
                 d_dropout: float = 0.0):
        super().__init__()
        self.latent_dim = latent_dim
        self.generator = conv_decoder(latent_dim, channels, batch_norm=True, fc=fc)
        self.discriminator = Discriminator(channels, spectral_norm=spectral_norm, dropout=d_dropout)
        self.encoder = conv_encoder(latent_dim, channels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.generator(z))

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn((n, self.latent_dim), generator=generator, device=next(self.parameters()).device)
        return self.decode(z)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator.features(x)
