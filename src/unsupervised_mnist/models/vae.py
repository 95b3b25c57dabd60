"""Variational autoencoder (Kingma & Welling, 2014) with a Bernoulli likelihood, as pytorch/examples."""

from __future__ import annotations

import torch
from torch import nn

from unsupervised_mnist.models.blocks import decoder, encoder


class VAE(nn.Module):
    def __init__(self, latent_dim: int, arch: str, hidden: list[int], channels: list[int], fc: int = 0):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = encoder(arch, 2 * latent_dim, hidden, channels, fc)  # mean and log-variance
        self.decoder = decoder(arch, latent_dim, hidden, channels, fc)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean: the deterministic code used for clustering and reconstruction."""
        return self.posterior(x)[0]

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        device = next(self.parameters()).device
        z = torch.randn((n, self.latent_dim), generator=generator, device=device)
        return self.decode(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The training pass: logits of the reconstruction from one posterior sample, and the posterior
        (mean, log-variance). The sample is drawn in fp32 even under autocast."""
        mu, logvar = self.posterior(x)
        z = self.reparameterize(mu.float(), logvar.float(), generator)
        return self.decoder(z), mu, logvar


def negative_elbo(logits: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                  beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image reconstruction BCE (summed over pixels) and KL(q(z|x) || N(0, I)) (Appendix B of the paper)."""
    recon = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
    return recon, beta * kl
