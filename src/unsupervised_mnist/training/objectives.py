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
UMAP_INIT = {"components": 5, "neighbors": 15, "epochs": 200}  # as evaluate.umap_* (chosen there on validation)
ENCODE_BATCH = 1000  # images per encoder call when the whole training split is encoded
LOG_MSE_EPS = 1e-6  # a 60 dB reconstruction: no image weighs more than that
BN_BATCHES, BN_BATCH = 8, 256  # samples that estimate the averaged generator's batch-norm statistics


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

    def start_epoch(self, epoch: int, epochs: int, train_clean: torch.Tensor) -> None:
        """Called before each epoch's first step, with the epoch's (moved) training images: the VAE's KL
        warm-up, the AE's clustering targets."""

    def end_epoch(self, generator: torch.Generator) -> None:
        """Called after each epoch's last step, before validation and the checkpoint (the GAN's averaged
        generator takes its batch-norm statistics from its own samples)."""

    def scheduled_optimizers(self) -> list[torch.optim.Optimizer]:
        """The optimizers whose learning rate follows the model's schedule (the others keep theirs)."""
        return list(self.optimizers.values())

    def extra_state(self) -> dict:
        """Training state outside the model and the optimizers, for the resumable checkpoint."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def train_step(self, clean: torch.Tensor, noisy: torch.Tensor, generator: torch.Generator,
                   rows: torch.Tensor) -> Losses:
        """One update on a batch; `rows` are its rows of the training split."""
        raise NotImplementedError

    def val_losses(self, clean: torch.Tensor, noisy: torch.Tensor, generator: torch.Generator) -> Losses:
        raise NotImplementedError


def soft_assignments(codes: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """q_ij: Student's t kernel (one degree of freedom) between code i and centre j, normalised over j
    (DEC, Xie et al., 2016, eq. 1)."""
    kernel = 1.0 / (1.0 + torch.cdist(codes, centres).pow(2))
    return kernel / kernel.sum(1, keepdim=True)


def sharpened_targets(q: torch.Tensor) -> torch.Tensor:
    """p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j'), f_j = sum_i q_ij: confident assignments weigh more and
    large clusters less (DEC, eq. 3)."""
    weight = q.pow(2) / q.sum(0)
    return weight / weight.sum(1, keepdim=True)


class ClusteringCode(nn.Module):
    """What DEC trains: the AE's clustering encoder and its centres; the pass gives the soft assignments."""

    def __init__(self, ae: AutoEncoder):
        super().__init__()
        self.encoder, self.centres = ae.cluster_encoder, ae.centres

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = self.encoder(x)
        return soft_assignments(codes.float(), self.centres.float()), codes


class AEObjective(Objective):
    """Denoising autoencoder: reconstruct the clean image from its corrupted copy. With ae.dec.epochs, those
    epochs follow the denoiser's and train its clustering code alone, by DEC (Xie et al., 2016): a copy of the
    encoder and cluster centres learn KL(P || Q) between the codes' soft assignments to the centres and their
    sharpened targets, which pulls each clean image's code towards its cluster; with `dec.recon_weight` the
    code must also still decode to its image through the AE's (frozen) decoder, as in IDEC (Guo et al., 2017),
    which keeps DEC from tearing the code apart. The denoiser is untouched."""

    def __init__(self, model: AutoEncoder, params: Params, device: torch.device, world: World = SINGLE_PROCESS):
        self.dec, self.seed = params.ae.dec, params.seed
        parts = {"ae": nn.Sequential(model.encoder, model.decoder)}  # the denoiser: the AE's own forward
        if self.dec.epochs:
            parts["dec"] = ClusteringCode(model)
        super().__init__(model, parts, denoising=params.ae.denoising, device=device,
                         precision=params.train.precision, world=world)
        self.loss_kind, self.clustering, self.targets = params.ae.loss, False, None
        self.optimizers = {name: adam(part.parameters(), params.ae.lr, weight_decay=params.ae.weight_decay)
                           if name == "ae" else adam(part.parameters(), self.dec.lr)  # DEC: constant rate
                           for name, part in parts.items()}

    def scheduled_optimizers(self):
        return [self.optimizers["ae"]]

    def recon_loss(self, logits: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        if self.loss_kind == "bce":
            return F.binary_cross_entropy_with_logits(logits, clean)
        per_image = (torch.sigmoid(logits) - clean).pow(2).flatten(1).mean(1)
        if self.loss_kind == "log_mse":  # the mean of per-image log MSE: -PSNR up to a constant, as evaluated
            return per_image.add(LOG_MSE_EPS).log().mean()
        return per_image.mean()

    def loss(self, net: nn.Module, clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
        with self.amp():
            logits = net(noisy if self.denoising else clean).float()
        return self.recon_loss(logits, clean)

    @torch.no_grad()
    def start_epoch(self, epoch, epochs, train_clean):
        self.clustering = self.dec.epochs > 0 and epoch > epochs - self.dec.epochs
        if not self.clustering:
            return
        model = self.model
        first = epoch == epochs - self.dec.epochs + 1  # a run resumed later has its code and centres already
        if first:
            model.cluster_encoder.load_state_dict(model.encoder.state_dict())
        codes = torch.cat([model.cluster_encoder(train_clean[i:i + ENCODE_BATCH])
                           for i in range(0, len(train_clean), ENCODE_BATCH)]).float()
        if first:
            model.centres.copy_(initial_centres(codes, len(model.centres), self.dec.init, self.seed))
        # The targets stay fixed for the epoch (DEC's self-training): computed once, looked up per batch.
        self.targets = sharpened_targets(soft_assignments(codes, model.centres.float()))

    def train_step(self, clean, noisy, generator, rows):
        name = "dec" if self.clustering else "ae"
        if self.clustering:
            with self.amp():
                q, codes = self.nets["dec"](clean)
            loss = F.kl_div(q.clamp_min(1e-12).log(), self.targets[rows], reduction="batchmean")
            if self.dec.recon_weight:  # IDEC: the code must still decode to its image, through the AE's own decoder
                decoder = self.model.decoder.eval()  # its batch-norm statistics are the denoiser's: used, not updated
                with frozen(decoder), self.amp():
                    recon = self.recon_loss(decoder(codes).float(), clean)
                decoder.train()
                loss = loss + self.dec.recon_weight * recon
        else:
            loss = self.loss(self.nets["ae"], clean, noisy)
        self.optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers[name].step()
        if not self.dec.epochs:
            return {"loss": loss.detach()}
        zero = torch.zeros_like(loss)  # the term that did not train this epoch
        return {"loss": zero if self.clustering else loss.detach(), "kl": loss.detach() if self.clustering else zero}

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

    def start_epoch(self, epoch, epochs, train_clean):
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

    def train_step(self, clean, noisy, generator, rows):
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


def initial_centres(codes: torch.Tensor, k: int, init: str, seed: int) -> torch.Tensor:
    """Where DEC starts: the centres of k-means on the codes (`kmeans`, DEC's own start), or the mean code of
    each cluster that k-means finds in a UMAP embedding of the codes (`umap`: N2D's partition, which on
    these codes is far more often right than k-means in the code space)."""
    from sklearn.cluster import KMeans

    points = codes.double().cpu().numpy()
    if init == "umap":
        from unsupervised_mnist.manifold import umap_embedding

        points = umap_embedding(points, UMAP_INIT["components"], UMAP_INIT["neighbors"], UMAP_INIT["epochs"], seed)
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed % 2**32).fit_predict(points)
    return torch.stack([codes[torch.from_numpy(labels == j).to(codes.device)].mean(0) for j in range(k)])


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
        self.ema, self.ema_updates, self.resample_bn = p.ema, 0, p.ema_bn == "resample"
        self.encoder_epochs, self.encoder_only = p.encoder_epochs, False
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

    def scheduled_optimizers(self):
        # The encoder keeps its rate: with gan.encoder_epochs it learns after the schedule has ended.
        return [self.optimizers["discriminator"], self.optimizers["generator"]]

    def start_epoch(self, epoch, epochs, train_clean):
        # With gan.encoder_epochs, the last epochs train the encoder alone, against the final averaged generator
        # (what `decode` is), instead of a step of it in every GAN step against a generator still moving.
        self.encoder_only = self.encoder_epochs > 0 and epoch > epochs - self.encoder_epochs

    @torch.no_grad()
    def end_epoch(self, generator):
        if not (self.ema and self.resample_bn) or self.encoder_only:
            return
        # The live generator's batch-norm statistics belong to other weights than the average's: estimate the
        # average's own from its samples (as for SWA, Izmailov et al., 2018), an exact mean over the batches.
        average = self.model.generator
        norms = [m for m in average.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
        average.train()
        for _ in range(BN_BATCHES):
            average(torch.randn((BN_BATCH, self.model.latent_dim), generator=generator, device=generator.device))
        for norm in norms:
            norm.momentum = 0.1

    @torch.no_grad()
    def update_average(self) -> None:
        # The decay ramps up as (1 + t) / (10 + t) (as tf.train.ExponentialMovingAverage's num_updates):
        # with a fixed 0.999 a run of a few hundred steps would still weigh the random initial weights.
        decay = min(self.ema, (1 + self.ema_updates) / (10 + self.ema_updates))
        self.ema_updates += 1
        for average, live in zip(self.model.generator.parameters(), self.live_generator.parameters()):
            average.lerp_(live, 1 - decay)
        if not self.resample_bn:
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

    def train_step(self, clean, noisy, generator, rows):
        model, n = self.model, len(clean)
        d, g, e = self.nets["discriminator"], self.nets["generator"], self.nets["encoder"]
        z = torch.randn((n, model.latent_dim), generator=generator, device=clean.device)
        if self.encoder_only:  # D and G rest while the encoder learns to invert the final G
            zero = torch.zeros((), device=clean.device)
            return {"d_loss": zero, "g_loss": zero, "e_loss": self.encoder_step(e, z, clean, noisy)}

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

        # 3. Encoder: invert the (fixed) generator; with gan.encoder_epochs it learns after the GAN instead.
        e_loss = self.encoder_step(e, z, clean, noisy, fake) if not self.encoder_epochs else torch.zeros_like(g_loss)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "e_loss": e_loss}

    def encoder_step(self, e: nn.Module, z: torch.Tensor, clean: torch.Tensor, noisy: torch.Tensor,
                     fake: torch.Tensor | None = None) -> torch.Tensor:
        """One step of the encoder: ||E(G(z)) - z||^2 + encoder_weight * BCE(G(E(noisy)), clean). Without
        `fake` (the encoder's own epochs), G(z) comes from the averaged generator, run as `decode` runs it."""
        if fake is None:
            average, was_training = self.model.generator, self.model.generator.training
            with torch.no_grad(), self.amp():
                fake = torch.sigmoid(average.eval()(z))
            average.train(was_training)
        with frozen(self.model.generator), self.amp():
            latent, image = self.encoder_loss(e, z, fake, clean, noisy)
            e_loss = latent + self.encoder_weight * image
        self.optimizers["encoder"].zero_grad(set_to_none=True)
        e_loss.backward()
        self.optimizers["encoder"].step()
        return e_loss.detach()

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
