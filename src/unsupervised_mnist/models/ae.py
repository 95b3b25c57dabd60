"""Autoencoder: stacked (MLP) or convolutional, trained as a denoising AE (Vincent et al., 2008): reconstruct
the clean image from its corrupted copy. With ae.dec.epochs, those epochs follow the denoiser's and train a
clustering code beside it (models/dec.py): a copy of the encoder that DEC refines towards cluster centres,
so that the denoiser itself stays untouched; with dec.recon_weight the code must also still decode to its
image through the AE's frozen decoder, as in IDEC (Guo et al., 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unsupervised_mnist.config import COUNT, RATE, TRAINING, Params, Rule, Section, between, one_of
from unsupervised_mnist.models.blocks import CODER, Denoiser, decoder, encoder
from unsupervised_mnist.models.dec import (
    ClusteringCode,
    initial_centres,
    kl_to_targets,
    sharpened_targets,
    soft_assignments,
)
from unsupervised_mnist.models.objective import Objective, adam, frozen, recon_mse
from unsupervised_mnist.models.registry import Gate, ModelSpec, register

ENCODE_BATCH = 1000  # images per encoder call when the whole training split is encoded
LOG_MSE_EPS = 1e-6  # a 60 dB reconstruction: no image weighs more than that


class AutoEncoder(nn.Module):
    def __init__(self, latent_dim: int, arch: str, hidden: list[int], channels: list[int], fc: int = 0,
                 clusters: int = 0):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = encoder(arch, latent_dim, hidden, channels, fc)
        self.decoder = decoder(arch, latent_dim, hidden, channels, fc)
        if clusters:
            self.cluster_encoder = encoder(arch, latent_dim, hidden, channels, fc)
            self.centres = nn.Parameter(torch.zeros(clusters, latent_dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def second_codes(self) -> dict[str, tuple]:
        """The clustering code, when there is one: (how to compute it, the labelled splits it is scored on)."""
        return {"dec_": (self.cluster_encoder, ("val", "test"))} if hasattr(self, "cluster_encoder") else {}

    def exports(self) -> dict[str, nn.Module]:
        return {"denoiser": Denoiser(self.encoder, self.decoder), "encoder": self.encoder}


class Reconstruction(nn.Module):
    """What the denoiser's epochs train: image -> (logits of its reconstruction, its code). The AE's own encoder
    and decoder, without the clustering code, so that DDP and the optimizer see exactly the trained part."""

    def __init__(self, ae: AutoEncoder):
        super().__init__()
        self.encoder, self.decoder = ae.encoder, ae.decoder

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encoder(x)
        return self.decoder(code), code


class AEObjective(Objective):
    """The denoiser's epochs, then (with ae.dec.epochs) the clustering code's."""

    def __init__(self, model: AutoEncoder, params: Params, section: Section, device: torch.device):
        self.dec, self.seed, self.loss_kind = section.dec, params.seed, section.loss
        parts = {"ae": Reconstruction(model)}
        if self.dec.epochs:
            parts["dec"] = ClusteringCode(model.cluster_encoder, model.centres)
            self.umap = params.evaluate  # the start's UMAP settings: the evaluation's (evaluate.umap_*)
        super().__init__(model, parts, denoising=section.denoising, device=device, precision=params.train.precision)
        self.clustering, self.targets = False, None
        self.optimizers = {"ae": adam(parts["ae"].parameters(), section.lr, weight_decay=section.weight_decay)}
        if self.dec.epochs:
            self.optimizers["dec"] = adam(parts["dec"].parameters(), self.dec.lr)  # DEC: constant rate

    @classmethod
    def total_epochs(cls, section: Section) -> int:
        return section.epochs + section.dec.epochs

    def scheduled_optimizers(self):
        return [self.optimizers["ae"]]

    def recon_loss(self, logits: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        if self.loss_kind == "bce":
            return F.binary_cross_entropy_with_logits(logits, clean)
        per_image = (torch.sigmoid(logits) - clean).pow(2).flatten(1).mean(1)
        if self.loss_kind == "log_mse":  # the mean of per-image log MSE: -PSNR up to a constant, as evaluated
            return per_image.add(LOG_MSE_EPS).log().mean()
        return per_image.mean()

    def code_loss(self, code: torch.Tensor) -> torch.Tensor | float:
        """A term on the code itself: none here; a variant's own loss term (sparsity, contraction) goes here."""
        return 0.0

    def loss(self, net: nn.Module, clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
        with self.amp():
            logits, code = net(noisy if self.denoising else clean)
        return self.recon_loss(logits.float(), clean) + self.code_loss(code.float())  # in fp32, outside autocast

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
            model.centres.copy_(initial_centres(codes, self.dec, self.seed, self.umap))
        # The targets stay fixed for the epoch (DEC's self-training): computed once, looked up per batch.
        self.targets = sharpened_targets(soft_assignments(codes, model.centres.float()))

    def clustering_loss(self, clean: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        with self.amp():
            q, codes = self.nets["dec"](clean)
        loss = kl_to_targets(q, self.targets[rows])
        if self.dec.recon_weight:  # IDEC: the code must still decode to its image, through the AE's own decoder
            decoder = self.model.decoder.eval()  # its batch-norm statistics are the denoiser's: used, not updated
            with frozen(decoder), self.amp():
                logits = decoder(codes)
            decoder.train()
            loss = loss + self.dec.recon_weight * self.recon_loss(logits.float(), clean)
        return loss

    def train_step(self, clean, noisy, generator, rows):
        name = "dec" if self.clustering else "ae"
        loss = self.clustering_loss(clean, rows) if self.clustering else self.loss(self.nets["ae"], clean, noisy)
        self.update(name, loss)
        if not self.dec.epochs:
            return {"loss": loss.detach()}
        zero = torch.zeros_like(loss)  # the term that did not train this epoch
        return {"loss": zero if self.clustering else loss.detach(), "kl": loss.detach() if self.clustering else zero}

    def val_losses(self, clean, noisy, generator, rows):
        return {"loss": self.loss(self.parts["ae"], clean, noisy), "recon_mse": recon_mse(self.model, noisy, clean)}


def ae_config(params: Params, section: Section) -> dict:
    config = {"latent_dim": params.latent_dim, "arch": section.arch, "hidden": list(section.hidden),
              "channels": list(section.channels), "fc": section.fc}
    return config | ({"clusters": section.dec.clusters} if section.dec.epochs else {})


AE_RULES = {**CODER, "denoising": Rule(bool), "weight_decay": between(float, 0.0, 1.0),
            "loss": one_of("bce", "mse", "log_mse"), **TRAINING,
            "dec.epochs": COUNT, "dec.clusters": between(int, 2, 1000), "dec.init": one_of("kmeans", "umap"),
            "dec.lr": RATE, "dec.recon_weight": between(float, 0.0, 1000.0)}

register(ModelSpec(name="ae", network=AutoEncoder, config=ae_config, objective=AEObjective, rules=AE_RULES,
                   gate=Gate("test/psnr_db", "max")))  # denoising PSNR on the test split
