"""One training objective per model: a step (forward, loss, backward, update) and validation losses.

Steps return their losses as 0-dim tensors still on the device; the engine sums them there and reads
them once per epoch. Every random draw comes from the generator the engine passes in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from unsupervised_mnist.config import Params
from unsupervised_mnist.device import autocast_for
from unsupervised_mnist.models.ae import AutoEncoder
from unsupervised_mnist.models.gan import GAN
from unsupervised_mnist.models.vae import VAE, negative_elbo
from unsupervised_mnist.training.distributed import World, wrap

Losses = dict[str, torch.Tensor]


def recon_mse(model: nn.Module, inputs: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel MSE of decode(encode(inputs)) against the clean images: comparable across models."""
    return F.mse_loss(model.decode(model.encode(inputs)).float(), clean)


class _Call(nn.Module):
    """forward() = fn(model, *args): a training pass that is not the model's own forward (the AE's and
    VAE's forward() return images, for export) as a module DistributedDataParallel can wrap."""

    def __init__(self, model: nn.Module, fn: Callable[..., object]):
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, *args):
        return self.fn(self.model, *args)


@contextlib.contextmanager
def frozen(module: nn.Module):
    """No gradients into `module` while another part learns through it: less work, and under DDP no
    gradient hook of a module that is not being updated fires."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


def _update(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


class Objective:
    model: nn.Module
    optimizers: dict[str, torch.optim.Optimizer]

    def __init__(self, model: nn.Module, denoising: bool, device: torch.device, precision: str = "auto"):
        self.model, self.denoising, self.amp = model, denoising, autocast_for(device, precision)

    def inputs(self, clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
        return noisy if self.denoising else clean

    def distribute(self, world: World) -> None:
        """Under torchrun: route the training passes through DistributedDataParallel."""

    def train_step(self, clean: torch.Tensor, noisy: torch.Tensor, generator: torch.Generator) -> Losses:
        raise NotImplementedError

    def val_losses(self, clean: torch.Tensor, noisy: torch.Tensor, generator: torch.Generator) -> Losses:
        raise NotImplementedError


class AEObjective(Objective):
    """Denoising autoencoder: reconstruct the clean image from its corrupted copy."""

    def __init__(self, model: AutoEncoder, params: Params, device: torch.device):
        super().__init__(model, params.ae.denoising, device, params.train.precision)
        self.loss_kind = params.ae.loss
        self.optimizers = {"ae": torch.optim.Adam(model.parameters(), lr=params.ae.lr)}
        self.local = _Call(model, lambda m, x: m.decode_logits(m.encode(x)))
        self.train_pass = self.local

    def distribute(self, world: World) -> None:
        self.train_pass = wrap(self.local, world)

    def loss(self, clean: torch.Tensor, noisy: torch.Tensor, net: nn.Module) -> torch.Tensor:
        with self.amp():
            logits = net(self.inputs(clean, noisy)).float()
        if self.loss_kind == "bce":
            return F.binary_cross_entropy_with_logits(logits, clean)
        return F.mse_loss(torch.sigmoid(logits), clean)

    def train_step(self, clean, noisy, generator):
        loss = self.loss(clean, noisy, self.train_pass)
        _update(self.optimizers["ae"], loss)
        return {"loss": loss.detach()}

    def val_losses(self, clean, noisy, generator):
        return {"loss": self.loss(clean, noisy, self.local), "recon_mse": recon_mse(self.model, noisy, clean)}


class VAEObjective(Objective):
    """Negative ELBO per image: summed Bernoulli reconstruction term plus beta * KL."""

    def __init__(self, model: VAE, params: Params, device: torch.device):
        super().__init__(model, params.vae.denoising, device, params.train.precision)
        self.beta = params.vae.beta
        self.optimizers = {"vae": torch.optim.Adam(model.parameters(), lr=params.vae.lr)}
        self.local = _Call(model, self.vae_pass)
        self.train_pass = self.local

    def distribute(self, world: World) -> None:
        self.train_pass = wrap(self.local, world)

    @staticmethod
    def vae_pass(model: VAE, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        mu, logvar = model.posterior(x)
        z = model.reparameterize(mu.float(), logvar.float(), generator)
        return model.decode_logits(z), mu, logvar

    def losses(self, clean, noisy, generator, net: nn.Module) -> Losses:
        with self.amp():
            logits, mu, logvar = net(self.inputs(clean, noisy), generator)
        recon, kl = negative_elbo(logits.float(), clean, mu.float(), logvar.float(), self.beta)
        return {"loss": (recon + kl).mean(), "recon": recon.mean(), "kl": kl.mean()}

    def train_step(self, clean, noisy, generator):
        losses = self.losses(clean, noisy, generator, self.train_pass)
        _update(self.optimizers["vae"], losses["loss"])
        return {k: v.detach() for k, v in losses.items()}

    def val_losses(self, clean, noisy, generator):
        return {**self.losses(clean, noisy, generator, self.local), "recon_mse": recon_mse(self.model, noisy, clean)}


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator) -> torch.Tensor:
    """(||grad D(x_hat)|| - 1)^2 on random interpolates (Gulrajani et al., 2017, eq. 3)."""
    alpha = torch.rand((len(real), 1, 1, 1), generator=generator, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


class GANObjective(Objective):
    """DCGAN step (D, then G) plus an encoder step that learns to invert G. D and E see real and
    generated images in one concatenated batch (neither has batch norm, so this equals two passes),
    which keeps every training pass a single call of the part being trained, as DDP needs."""

    def __init__(self, model: GAN, params: Params, device: torch.device):
        super().__init__(model, True, device, params.train.precision)
        p = params.gan
        self.kind, self.gp_weight, self.encoder_weight = p.loss, p.gp_weight, p.encoder_weight
        betas = (p.beta1, 0.999) if p.loss != "wgan-gp" else (p.beta1, 0.9)
        self.optimizers = {
            part: torch.optim.Adam(getattr(model, part).parameters(), lr=p.lr, betas=betas)
            for part in ("discriminator", "generator", "encoder")
        }
        self.d, self.g, self.e = model.discriminator, model.generator, model.encoder  # DDP-wrapped by distribute

    def distribute(self, world: World) -> None:
        self.d, self.g, self.e = (wrap(part, world) for part in (self.d, self.g, self.e))

    def scores(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return discriminator(torch.cat([real, fake])).float().split(len(real))

    def d_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        if self.kind == "ns":  # -log D(x) - log(1 - D(G(z))), with D = sigmoid(score)
            return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
        if self.kind == "hinge":  # Lim & Ye (2017); Miyato et al. (2018)
            return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
        return fake_scores.mean() - real_scores.mean()  # Wasserstein critic

    def g_loss(self, fake_scores: torch.Tensor) -> torch.Tensor:
        if self.kind == "ns":  # the non-saturating -log D(G(z)) of Goodfellow et al. (2014)
            return F.softplus(-fake_scores).mean()
        return -fake_scores.mean()

    def encoder_loss(self, encoder: nn.Module, z, fake, clean, noisy) -> tuple[torch.Tensor, torch.Tensor]:
        """||E(G(z)) - z||^2 and BCE(G(E(noisy)), clean); G is only passed through, never updated here."""
        latent_fake, latent_noisy = encoder(torch.cat([fake.detach(), noisy])).float().split(len(clean))
        image = F.binary_cross_entropy_with_logits(self.model.generator(latent_noisy).float(), clean)
        return F.mse_loss(latent_fake, z), image

    def train_step(self, clean, noisy, generator):
        model, n = self.model, len(clean)
        z = torch.randn((n, model.latent_dim), generator=generator, device=clean.device)
        with self.amp():
            fake = torch.sigmoid(self.g(z))
            d_loss = self.d_loss(*self.scores(self.d, clean, fake.detach()))
        if self.kind == "wgan-gp":
            d_loss = d_loss + self.gp_weight * gradient_penalty(model.discriminator, clean, fake.detach(), generator)
        _update(self.optimizers["discriminator"], d_loss)
        with frozen(model.discriminator), self.amp():
            g_loss = self.g_loss(model.discriminator(fake).float())
        _update(self.optimizers["generator"], g_loss)
        with frozen(model.generator), self.amp():
            latent, image = self.encoder_loss(self.e, z, fake, clean, noisy)
            e_loss = latent + self.encoder_weight * image
        _update(self.optimizers["encoder"], e_loss)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "e_loss": e_loss.detach()}

    def val_losses(self, clean, noisy, generator):
        model = self.model
        z = torch.randn((len(clean), model.latent_dim), generator=generator, device=clean.device)
        with self.amp():
            fake = model.decode(z)
            d_loss = self.d_loss(*self.scores(model.discriminator, clean, fake))
            g_loss = self.g_loss(model.discriminator(fake).float())
            latent, image = self.encoder_loss(model.encoder, z, fake, clean, noisy)
        return {"d_loss": d_loss, "g_loss": g_loss, "e_latent_mse": latent, "e_image_bce": image,
                "recon_mse": recon_mse(model, noisy, clean)}


def make_objective(name: str, model: nn.Module, params: Params, device: torch.device) -> Objective:
    return {"ae": AEObjective, "vae": VAEObjective, "gan": GANObjective}[name](model, params, device)
