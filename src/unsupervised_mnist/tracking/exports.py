"""Single-tensor modules for export: one tensor in, one out, as MLflow signatures and `torch.export`
(the `pt2` format) need. They share the trained model's weights; nothing is copied."""

from __future__ import annotations

import torch
from torch import nn

from unsupervised_mnist.models.ae import AutoEncoder
from unsupervised_mnist.models.gan import GAN
from unsupervised_mnist.models.vae import VAE


class PosteriorMean(nn.Module):
    """The VAE's code: the mean half of its encoder's output."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.encoder, self.latent_dim = vae.encoder, vae.latent_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[:, : self.latent_dim]


class Images(nn.Module):
    """A logits network followed by the sigmoid: code -> image in [0, 1]."""

    def __init__(self, logits: nn.Module):
        super().__init__()
        self.logits = logits

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))


class Denoiser(nn.Module):
    """Noisy image -> clean image in [0, 1]: decode(encode(x)), through the VAE's posterior mean."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.images = encoder, Images(decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.images(self.encoder(x))


def single_tensor_modules(model: nn.Module) -> dict[str, nn.Module]:
    """kind -> module: `denoiser` (noisy image -> clean image), `encoder` (image -> code),
    `generator` (code -> image), each in eval mode."""
    if isinstance(model, GAN):
        modules = {"generator": Images(model.generator), "encoder": model.encoder}
    elif isinstance(model, VAE):
        modules = {"denoiser": Denoiser(PosteriorMean(model), model.decoder), "encoder": PosteriorMean(model)}
    elif isinstance(model, AutoEncoder):
        modules = {"denoiser": Denoiser(model.encoder, model.decoder), "encoder": model.encoder}
    else:
        raise TypeError(f"no exports for {type(model).__name__}")
    return {kind: module.eval() for kind, module in modules.items()}
