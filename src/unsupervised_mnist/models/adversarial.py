"""The GAN's losses and the moving average of its generator's weights (models/gan.py trains with them)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

BN_BATCHES, BN_BATCH = 8, 256  # samples that estimate the averaged generator's batch-norm statistics


def d_loss(kind: str, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    if kind == "ns":  # -log D(x) - log(1 - D(G(z))), with D = sigmoid(score)
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
    if kind == "hinge":  # Lim & Ye (2017); Miyato et al. (2018)
        return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
    return fake_scores.mean() - real_scores.mean()  # Wasserstein critic


def g_loss(kind: str, fake_scores: torch.Tensor) -> torch.Tensor:
    if kind == "ns":  # the non-saturating -log D(G(z)) of Goodfellow et al. (2014)
        return F.softplus(-fake_scores).mean()
    return -fake_scores.mean()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator) -> torch.Tensor:
    """(||grad D(x_hat)|| - 1)^2 on random interpolates (Gulrajani et al., 2017, eq. 3)."""
    alpha = torch.rand((len(real), 1, 1, 1), generator=generator, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


class RampedEMA:
    """`multi_avg_fn` of torch's AveragedModel: an exponential moving average whose decay ramps up as
    (1 + t) / (10 + t) after t updates (as tf.train.ExponentialMovingAverage's num_updates), so that a run of a
    few hundred steps does not still weigh the random initial weights. `t` is counted here, on the host: reading
    AveragedModel's own counter would cost a device sync per step."""

    def __init__(self, decay: float):
        self.decay, self.updates = decay, 0

    def __call__(self, averaged: list[torch.Tensor], current: list[torch.Tensor], _n_averaged) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for a, c in zip(averaged, current):
            a.lerp_(c, 1 - decay)


def moving_average(module: nn.Module, decay: float) -> AveragedModel:
    """A moving average of `module`'s weights, starting from them (its batch-norm statistics follow the live
    module's at every update; `resample_bn` re-estimates them for the averaged weights instead)."""
    average = AveragedModel(module, multi_avg_fn=RampedEMA(decay))
    average.update_parameters(module)  # the first update copies: the average starts at the initial weights
    return average


def update_average(average: AveragedModel, live: nn.Module) -> None:
    average.update_parameters(live)
    average.multi_avg_fn.updates += 1


@torch.no_grad()
def resample_bn(generator_net: nn.Module, latent_dim: int, rng: torch.Generator) -> None:
    """The live generator's batch-norm statistics belong to other weights than the average's: estimate the
    average's own from its samples (as for SWA, Izmailov et al., 2018), an exact mean over the batches."""
    codes = [torch.randn((BN_BATCH, latent_dim), generator=rng, device=rng.device) for _ in range(BN_BATCHES)]
    update_bn(codes, generator_net)
