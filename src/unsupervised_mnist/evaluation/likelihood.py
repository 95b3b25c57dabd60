"""VAE test bounds: the negative ELBO and the importance-weighted bound (Burda et al., 2016), in nats."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from unsupervised_mnist.models.vae import VAE

_LOG_2PI = math.log(2 * math.pi)


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * (_LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


@torch.no_grad()
def vae_bounds(model: VAE, inputs: torch.Tensor, target: torch.Tensor, k: int,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: -ELBO (K-sample reconstruction + analytic KL) and -IWAE_K, an upper bound on -log p(x)
    that is tighter: -IWAE_K <= -ELBO, with equality at K = 1 in expectation."""
    mu, logvar = model.posterior(inputs)
    eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device)
    z = mu + eps * (0.5 * logvar).exp()  # (K, N, d)
    logits = model.decode_logits(z.flatten(0, 1)).view(k, len(target), -1)
    log_px = -F.binary_cross_entropy_with_logits(logits, target.flatten(1).expand(k, -1, -1),
                                                 reduction="none").sum(-1)
    log_pz = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
    log_qz = _log_normal(z, mu, logvar)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
    neg_elbo = -log_px.mean(0) + kl
    neg_iwae = -(torch.logsumexp(log_px + log_pz - log_qz, dim=0) - math.log(k))
    return neg_elbo, neg_iwae
