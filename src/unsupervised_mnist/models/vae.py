"""Variational autoencoder (Kingma & Welling, 2014) with a Bernoulli likelihood, as pytorch/examples: trained on
the negative ELBO, bounded at test time by the ELBO and the importance-weighted bound (Burda et al., 2016)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from unsupervised_mnist.config import COUNT, TRAINING, Params, Rule, Section, between
from unsupervised_mnist.models.blocks import CODER, Denoiser, decoder, encoder
from unsupervised_mnist.models.objective import Losses, Objective, adam, recon_mse
from unsupervised_mnist.models.registry import Gate, ModelSpec, register

_LOG_2PI = math.log(2 * math.pi)


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

    @torch.no_grad()
    def likelihood_bounds(self, inputs: torch.Tensor, target: torch.Tensor, k: int,
                          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image, in nats: -ELBO (K-sample reconstruction + analytic KL) and -IWAE_K, an upper bound on
        -log p(x) that is tighter: -IWAE_K <= -ELBO, with equality at K = 1 in expectation."""
        mu, logvar = self.posterior(inputs)
        eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device)
        z = mu + eps * (0.5 * logvar).exp()  # (K, N, d)
        logits = self.decoder(z.flatten(0, 1)).view(k, len(target), -1)
        log_px = -F.binary_cross_entropy_with_logits(logits, target.flatten(1).expand(k, -1, -1),
                                                     reduction="none").sum(-1)
        log_pz = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz = _log_normal(z, mu, logvar)
        neg_elbo = -log_px.mean(0) + kl_divergence(mu, logvar)
        neg_iwae = -(torch.logsumexp(log_px + log_pz - log_qz, dim=0) - math.log(k))
        return neg_elbo, neg_iwae

    def exports(self) -> dict[str, nn.Module]:
        return {"denoiser": Denoiser(PosteriorMean(self), self.decoder), "encoder": PosteriorMean(self)}


class PosteriorMean(nn.Module):
    """The VAE's code as one tensor out: the mean half of its encoder's output (for export)."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.encoder, self.latent_dim = vae.encoder, vae.latent_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[:, : self.latent_dim]


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * (_LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per image (Appendix B of the paper)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def negative_elbo(logits: torch.Tensor, target: torch.Tensor, mu: torch.Tensor,
                  logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image reconstruction BCE (summed over pixels) and KL."""
    recon = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)
    return recon, kl_divergence(mu, logvar)


class VAEObjective(Objective):
    """Negative ELBO per image: summed Bernoulli reconstruction term plus beta * KL. A KL warm-up (Bowman et al.,
    2016; Sønderby et al., 2016) keeps the posterior from collapsing onto the prior before the decoder has learnt
    to use the code."""

    def __init__(self, model: VAE, params: Params, section: Section, device: torch.device):
        super().__init__(model, {"vae": model}, denoising=section.denoising, device=device,
                         precision=params.train.precision)
        self.beta, self.kl_warmup_epochs = section.beta, section.kl_warmup_epochs
        self.kl_weight = self.beta
        self.optimizers = {"vae": adam(model.parameters(), section.lr, weight_decay=section.weight_decay)}

    def start_epoch(self, epoch, epochs, train_clean):
        ramp = epoch / self.kl_warmup_epochs if self.kl_warmup_epochs else 1.0
        self.kl_weight = self.beta * min(1.0, ramp)

    def losses(self, net: nn.Module, clean, noisy, generator, kl_weight: float) -> Losses:
        """The loss minimised (recon + kl_weight * KL) and its terms; `kl` is the unweighted KL."""
        with self.amp():
            logits, mu, logvar = net(noisy if self.denoising else clean, generator)
        recon, kl = negative_elbo(logits.float(), clean, mu.float(), logvar.float())
        return {"loss": (recon + kl_weight * kl).mean(), "recon": recon.mean(), "kl": kl.mean()}

    def train_step(self, clean, noisy, generator, rows):
        losses = self.losses(self.nets["vae"], clean, noisy, generator, self.kl_weight)
        self.update("vae", losses["loss"])
        return {k: v.detach() for k, v in losses.items()}

    def val_losses(self, clean, noisy, generator, rows):
        # Validated at the final weight: comparable across epochs of the warm-up.
        return {**self.losses(self.model, clean, noisy, generator, self.beta),
                "recon_mse": recon_mse(self.model, noisy, clean)}


def vae_config(params: Params, section: Section) -> dict:
    return {"latent_dim": params.latent_dim, "arch": section.arch, "hidden": list(section.hidden),
            "channels": list(section.channels), "fc": section.fc}


register(ModelSpec(
    name="vae", network=VAE, config=vae_config, objective=VAEObjective,
    gate=Gate("test/neg_elbo", "min"),  # nats per image
    rules={**CODER, "denoising": Rule(bool), "weight_decay": between(float, 0.0, 1.0),
           "beta": between(float, 0.0, 100.0, "("), "kl_warmup_epochs": COUNT, **TRAINING},
))
