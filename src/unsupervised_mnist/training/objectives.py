"""One training objective per model: a step (forward, loss, backward, update) and validation losses.

Each `train_step` reads top to bottom like pytorch/examples' loops. Under torchrun the trainable parts
run through DistributedDataParallel: `Objective.__init__` wraps them, the one place where that happens.

Steps return their losses as 0-dim tensors still on the device; the engine sums them there and reads
them once per epoch. Every random draw comes from the generator the engine passes in.
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn.functional as F
from torch import nn

from unsupervised_mnist.config import Params
from unsupervised_mnist.device import autocast_for
from unsupervised_mnist.models.ae import AutoEncoder
from unsupervised_mnist.models.gan import GAN
from unsupervised_mnist.models.vae import VAE, negative_elbo
from unsupervised_mnist.training.distributed import SINGLE_PROCESS, World, wrap

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
    """The model, its optimizers, and the passes that train it (`nets`: each trainable part, wrapped in
    DDP under torchrun, else the part itself)."""

    def __init__(self, model: nn.Module, parts: dict[str, nn.Module], *, denoising: bool, device: torch.device,
                 precision: str, world: World):
        self.model, self.denoising = model, denoising
        self.nets = {name: wrap(part, world) for name, part in parts.items()}
        self.amp = autocast_for(device, precision)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called before each epoch's first step (the VAE's KL warm-up)."""

    def extra_state(self) -> dict:
        """Training state outside the model and the optimizers, for the resumable checkpoint."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def train_step(self, clean: torch.Tensor, noisy: torch.Tensor, generator: torch.Generator) -> Losses:
        raise NotImplementedError

    def val_losses(self, clean: torch.Tensor, noisy: torch.Tensor, generator: torch.Generator) -> Losses:
        raise NotImplementedError


class AEObjective(Objective):
    """Denoising autoencoder: reconstruct the clean image from its corrupted copy."""

    def __init__(self, model: AutoEncoder, params: Params, device: torch.device, world: World = SINGLE_PROCESS):
        super().__init__(model, {"ae": model}, denoising=params.ae.denoising, device=device,
                         precision=params.train.precision, world=world)
        self.loss_kind = params.ae.loss
        self.optimizers = {"ae": adam(model.parameters(), params.ae.lr, weight_decay=params.ae.weight_decay)}

    def loss(self, net: nn.Module, clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
        with self.amp():
            logits = net(noisy if self.denoising else clean).float()
        if self.loss_kind == "bce":
            return F.binary_cross_entropy_with_logits(logits, clean)
        return F.mse_loss(torch.sigmoid(logits), clean)

    def train_step(self, clean, noisy, generator):
        optimizer = self.optimizers["ae"]
        loss = self.loss(self.nets["ae"], clean, noisy)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach()}

    def val_losses(self, clean, noisy, generator):
        return {"loss": self.loss(self.model, clean, noisy), "recon_mse": recon_mse(self.model, noisy, clean)}


class VAEObjective(Objective):
    """Negative ELBO per image: summed Bernoulli reconstruction term plus beta * KL."""

    def __init__(self, model: VAE, params: Params, device: torch.device, world: World = SINGLE_PROCESS):
        super().__init__(model, {"vae": model}, denoising=params.vae.denoising, device=device,
                         precision=params.train.precision, world=world)
        self.beta, self.kl_warmup_epochs = params.vae.beta, params.vae.kl_warmup_epochs
        self.kl_weight = self.beta
        self.optimizers = {"vae": adam(model.parameters(), params.vae.lr, weight_decay=params.vae.weight_decay)}

    def start_epoch(self, epoch, epochs):
        # KL warm-up (Bowman et al., 2016; Sønderby et al., 2016): a small KL weight early keeps the
        # posterior from collapsing onto the prior before the decoder has learnt to use the code.
        ramp = epoch / self.kl_warmup_epochs if self.kl_warmup_epochs else 1.0
        self.kl_weight = self.beta * min(1.0, ramp)

    def losses(self, net: nn.Module, clean, noisy, generator, kl_weight: float) -> Losses:
        """The loss minimised (recon + kl_weight * KL) and its terms; `kl` is the unweighted KL."""
        with self.amp():
            logits, mu, logvar = net(noisy if self.denoising else clean, generator)
        recon, kl = negative_elbo(logits.float(), clean, mu.float(), logvar.float())
        return {"loss": (recon + kl_weight * kl).mean(), "recon": recon.mean(), "kl": kl.mean()}

    def train_step(self, clean, noisy, generator):
        optimizer = self.optimizers["vae"]
        losses = self.losses(self.nets["vae"], clean, noisy, generator, self.kl_weight)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        return {k: v.detach() for k, v in losses.items()}

    def val_losses(self, clean, noisy, generator):
        # Validated at the final weight: comparable across epochs of the warm-up.
        return {**self.losses(self.model, clean, noisy, generator, self.beta),
                "recon_mse": recon_mse(self.model, noisy, clean)}


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
    which keeps every training pass a single call of the part being trained, as DDP needs.

    With `gan.ema` > 0 the optimiser trains a live copy of G, and `model.generator`, what is saved,
    sampled and inverted by the encoder, is the exponential moving average of its weights (as in
    Karras et al., 2018; Yazici et al., 2019): the average of the last few hundred steps draws cleaner
    digits than the last step's weights, at no training cost."""

    def __init__(self, model: GAN, params: Params, device: torch.device, world: World = SINGLE_PROCESS):
        p = params.gan
        self.ema, self.ema_updates = p.ema, 0
        self.live_generator = copy.deepcopy(model.generator) if p.ema else model.generator
        parts = {"discriminator": model.discriminator, "generator": self.live_generator, "encoder": model.encoder}
        super().__init__(model, parts, denoising=True, device=device, precision=params.train.precision, world=world)
        self.kind, self.gp_weight, self.encoder_weight = p.loss, p.gp_weight, p.encoder_weight
        betas = (p.beta1, 0.999) if p.loss != "wgan-gp" else (p.beta1, 0.9)
        self.optimizers = {name: adam(part.parameters(), p.d_lr if name == "discriminator" else p.lr, betas=betas,
                                      decoupled=False)
                           for name, part in parts.items()}

    def extra_state(self):
        return {"live_generator": self.live_generator.state_dict(), "ema_updates": self.ema_updates} if self.ema else {}

    def load_extra_state(self, state):
        if self.ema:
            self.live_generator.load_state_dict(state["live_generator"])
            self.ema_updates = int(state["ema_updates"])

    @torch.no_grad()
    def update_average(self) -> None:
        # The decay ramps up as (1 + t) / (10 + t) (as tf.train.ExponentialMovingAverage's num_updates):
        # with a fixed 0.999 a run of a few hundred steps would still weigh the random initial weights.
        decay = min(self.ema, (1 + self.ema_updates) / (10 + self.ema_updates))
        self.ema_updates += 1
        for average, live in zip(self.model.generator.parameters(), self.live_generator.parameters()):
            average.lerp_(live, 1 - decay)
        for average, live in zip(self.model.generator.buffers(), self.live_generator.buffers()):
            average.copy_(live)  # batch-norm statistics: the live ones

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
        """||E(G(z)) - z||^2 and BCE(G(E(noisy)), clean); G (the saved one, in evaluation mode, as
        `decode` runs it) is only passed through, never updated here."""
        latent_fake, latent_noisy = encoder(torch.cat([fake.detach(), noisy])).float().split(len(clean))
        generator = self.model.generator
        was_training = generator.training
        generator.eval()
        image = F.binary_cross_entropy_with_logits(generator(latent_noisy).float(), clean)
        generator.train(was_training)
        return F.mse_loss(latent_fake, z), image

    def train_step(self, clean, noisy, generator):
        model, n = self.model, len(clean)
        d, g, e = self.nets["discriminator"], self.nets["generator"], self.nets["encoder"]
        z = torch.randn((n, model.latent_dim), generator=generator, device=clean.device)

        # 1. Discriminator: real images against G's samples.
        with self.amp():
            fake = torch.sigmoid(g(z))
            d_loss = self.d_loss(*self.scores(d, clean, fake.detach()))
        if self.kind == "wgan-gp":
            d_loss = d_loss + self.gp_weight * gradient_penalty(model.discriminator, clean, fake.detach(), generator)
        self.optimizers["discriminator"].zero_grad(set_to_none=True)
        d_loss.backward()
        self.optimizers["discriminator"].step()

        # 2. Generator: fool the (now fixed) discriminator.
        with frozen(model.discriminator), self.amp():
            g_loss = self.g_loss(model.discriminator(fake).float())
        self.optimizers["generator"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizers["generator"].step()
        if self.ema:
            self.update_average()

        # 3. Encoder: invert the (fixed) generator.
        with frozen(model.generator), self.amp():
            latent, image = self.encoder_loss(e, z, fake, clean, noisy)
            e_loss = latent + self.encoder_weight * image
        self.optimizers["encoder"].zero_grad(set_to_none=True)
        e_loss.backward()
        self.optimizers["encoder"].step()
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


def make_objective(name: str, model: nn.Module, params: Params, device: torch.device,
                   world: World = SINGLE_PROCESS) -> Objective:
    return {"ae": AEObjective, "vae": VAEObjective, "gan": GANObjective}[name](model, params, device, world)
