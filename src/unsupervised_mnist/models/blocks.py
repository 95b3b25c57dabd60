"""Encoder and decoder stacks shared by the models (stacked MLP or strided convolutions), the params that
shape them, and the single-tensor wrappers the models export to MLflow.

Decoders return logits; models apply the sigmoid in `decode`, and the losses use the numerically
stable `*_with_logits` forms.
"""

from __future__ import annotations

import torch
from torch import nn

from unsupervised_mnist.config import Rule, between, one_of

IMAGE_SHAPE = (1, 28, 28)
# The params of an encoder/decoder pair (the autoencoders' sections).
CODER: dict[str, Rule] = {"arch": one_of("conv", "mlp"), "hidden": between(list, 1, 16384),
                          "channels": between(list, 1, 4096), "fc": between(int, 0, 16384)}


def mlp_encoder(out_dim: int, hidden: list[int]) -> nn.Sequential:
    """784 -> hidden[0] -> ... -> out_dim (a stacked autoencoder's encoder)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = 28 * 28
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, out_dim))


def mlp_decoder(in_dim: int, hidden: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_dim
    for h in reversed(hidden):
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 28 * 28), nn.Unflatten(1, IMAGE_SHAPE))


def conv_encoder(out_dim: int, channels: list[int], *, leaky: bool = False, fc: int = 0) -> nn.Sequential:
    """28x28 -> 14x14 -> 7x7 with 4x4 stride-2 convolutions (channels has two entries), then linear
    (through a hidden layer of `fc` units when fc > 0)."""
    c1, c2 = channels
    act = nn.LeakyReLU(0.2) if leaky else nn.ReLU()
    head = [nn.Linear(c2 * 7 * 7, fc), nn.ReLU(), nn.Linear(fc, out_dim)] if fc else [nn.Linear(c2 * 7 * 7, out_dim)]
    return nn.Sequential(
        nn.Conv2d(1, c1, 4, 2, 1), act,
        nn.Conv2d(c1, c2, 4, 2, 1), act,
        nn.Flatten(),
        *head,
    )


def conv_decoder(in_dim: int, channels: list[int], *, batch_norm: bool = False, fc: int = 0) -> nn.Sequential:
    """in_dim -> 7x7 -> 14x14 -> 28x28 with transposed convolutions (DCGAN-style, sized for 28x28); with
    fc > 0 the code first goes through a hidden layer of `fc` units."""
    c1, c2 = channels
    norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
    stem = [nn.Linear(in_dim, fc), nn.ReLU(), nn.Linear(fc, c2 * 7 * 7)] if fc else [nn.Linear(in_dim, c2 * 7 * 7)]
    return nn.Sequential(
        *stem,
        nn.Unflatten(1, (c2, 7, 7)), norm(c2), nn.ReLU(),
        nn.ConvTranspose2d(c2, c1, 4, 2, 1), norm(c1), nn.ReLU(),
        nn.ConvTranspose2d(c1, 1, 4, 2, 1),
    )


def encoder(arch: str, out_dim: int, hidden: list[int], channels: list[int], fc: int = 0) -> nn.Sequential:
    return conv_encoder(out_dim, channels, fc=fc) if arch == "conv" else mlp_encoder(out_dim, hidden)


def decoder(arch: str, in_dim: int, hidden: list[int], channels: list[int], fc: int = 0) -> nn.Sequential:
    return conv_decoder(in_dim, channels, batch_norm=True, fc=fc) if arch == "conv" else mlp_decoder(in_dim, hidden)


# ---------------------------------------------------------------- single-tensor modules for export
class Images(nn.Module):
    """A logits network followed by the sigmoid: code -> image in [0, 1]."""

    def __init__(self, logits: nn.Module):
        super().__init__()
        self.logits = logits

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))


class Denoiser(nn.Module):
    """Noisy image -> clean image in [0, 1]: decode(encode(x))."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.images = encoder, Images(decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.images(self.encoder(x))
