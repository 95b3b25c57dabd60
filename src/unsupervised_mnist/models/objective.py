"""What every training objective shares: the model's trainable parts, their optimizers, bf16 autocast.

An objective is a small class beside its network (models/<name>.py): a step (forward, loss, backward, update)
that reads top to bottom like pytorch/examples' loops, and validation losses. The engine (training/engine.py)
owns everything around it: data on the device, batches, noise, schedules, checkpoints, DDP, logging. Steps
return their losses as 0-dim tensors still on the device; the engine sums them there and reads them once per
epoch. Every random draw comes from the generator the engine passes in."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from unsupervised_mnist.config import Section
from unsupervised_mnist.device import autocast_for

Losses = dict[str, torch.Tensor]


def recon_mse(model: nn.Module, inputs: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel MSE of decode(encode(inputs)) against the clean images: comparable across models."""
    return F.mse_loss(model.decode(model.encode(inputs)).float(), clean)


@contextlib.contextmanager
def frozen(module: nn.Module):
    """No gradients into `module` while another part learns through it: less work, and under DDP no
    gradient hook of a module that is not being updated fires."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


def adam(params, lr: float, *, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
         decoupled: bool = True) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter, 2019), or Adam with `decoupled=False`, in PyTorch's fused form: one kernel
    per parameter instead of a dozen small ops; on the CPU, where torch's default is the per-op loop, a
    training step of the MLP VAE is 14 % faster (measured). The same update rule, rounded differently."""
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    return cls(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=True)


class Objective:
    """The model, its trainable parts and their optimizers; a subclass is built as
    `Objective(model, params, section, device)`, `section` being the model's part of params.yaml. `parts` are
    what the engine wraps in DDP under torchrun (`nets` then holds the wrapped ones, else the parts
    themselves): a training pass goes through `self.nets[...]`, so that the gradients are averaged over the
    processes."""

    def __init__(self, model: nn.Module, parts: dict[str, nn.Module], *, denoising: bool, device: torch.device,
                 precision: str):
        self.model, self.parts, self.denoising = model, parts, denoising
        self.nets: dict[str, nn.Module] = dict(parts)
        self.amp = autocast_for(device, precision)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    @classmethod
    def total_epochs(cls, section: Section) -> int:
        """The model's epochs, and those of any phase that follows them (the AE's clustering code)."""
        return section.epochs

    def scheduled_optimizers(self) -> list[torch.optim.Optimizer]:
        """The optimizers whose learning rate follows the model's schedule (the others keep theirs)."""
        return list(self.optimizers.values())

    def start_epoch(self, epoch: int, epochs: int, train_clean: torch.Tensor) -> None:
        """Called before each epoch's first step, with the epoch's (moved) training images."""

    def end_epoch(self, generator: torch.Generator) -> None:
        """Called after each epoch's last step, before validation and the checkpoint."""

    def extra_state(self) -> dict:
        """Training state outside the model and the optimizers, for the resumable checkpoint."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def train_step(self, clean: torch.Tensor, noisy: torch.Tensor, generator: torch.Generator,
                   rows: torch.Tensor) -> Losses:
        """One update on a batch; `rows` are its rows of the training split."""
        raise NotImplementedError

    def val_losses(self, clean: torch.Tensor, noisy: torch.Tensor, generator: torch.Generator,
                   rows: torch.Tensor) -> Losses:
        raise NotImplementedError

    def update(self, name: str, loss: torch.Tensor) -> None:
        """Backward and one optimizer step of part `name`."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
