"""The evaluator: a small CNN trained on the clean training split. Its penultimate layer is the feature space
for FID/KID and its softmax gives the classifier score and the class histogram of generated samples.

Sample-quality numbers are only as sharp as this network: a 95 %-accurate classifier scores real digits
well below a 99 %-accurate one, and its features blur good and bad samples together. So it is trained like
a small supervised model worth its name: batch norm, dropout, random shifts and turns of each image redrawn
every epoch (on the device, from the seed), AdamW with a cosine schedule.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unsupervised_mnist.config import Params, Section
from unsupervised_mnist.data.augment import random_affine
from unsupervised_mnist.data.dataset import Split
from unsupervised_mnist.device import autocast_for
from unsupervised_mnist.evaluation.sample_quality import reference_holdout
from unsupervised_mnist.progress import Progress
from unsupervised_mnist.seeding import derive_seed, torch_generator

FEATURE_DIM = 128


def conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    """Two 3x3 convolutions with batch norm, then 2x2 max pooling: 28 -> 14 -> 7."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]


class Classifier(nn.Module):
    def __init__(self, channels: tuple[int, int] = (32, 64), dropout: float = 0.0):
        super().__init__()
        c1, c2 = channels
        self.body = nn.Sequential(*conv_block(1, c1), *conv_block(c1, c2), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(c2 * 7 * 7, FEATURE_DIM))
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(FEATURE_DIM, 10))
        # Standardise features by their statistics on the real training images (set after training),
        # so FID and KID have a fixed, data-independent scale.
        self.register_buffer("feature_mean", torch.zeros(FEATURE_DIM))
        self.register_buffer("feature_std", torch.ones(FEATURE_DIM))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate pre-activations, standardised: no dead (all-zero) units, full-rank covariance."""
        return self.standardise(self.body(x))

    def standardise(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.feature_mean) / self.feature_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def build_classifier(p: Section) -> Classifier:
    return Classifier(tuple(p.channels), p.dropout)


@torch.no_grad()
def features_and_probs(model: Classifier, x: torch.Tensor, batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    feats, probs = [], []
    for start in range(0, len(x), batch):
        raw = model.body(x[start:start + batch])  # once for both: the conv layers are the cost
        feats.append(model.standardise(raw))
        probs.append(F.softmax(model.head(raw), dim=1))
    return torch.cat(feats).cpu(), torch.cat(probs).cpu()


def train_classifier(train: Split, p: Section, batch_size: int, seed: int, device: torch.device,
                     autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> Classifier:
    """Supervised training with the engine's habits: data on the device, seeded permutations and
    augmentation, losses summed on the device and read once per epoch. `autocast`: bf16 for the training
    passes where the chip has it; the features are computed in fp32 afterwards."""
    torch.manual_seed(seed)
    model = build_classifier(p).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay, fused=True)
    x, y = train.clean.to(device), train.labels.to(device)
    steps = -(-len(x) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=p.epochs * steps)
    progress = Progress("classifier", p.epochs)
    for epoch in range(1, p.epochs + 1):
        perm = torch.randperm(len(x), generator=torch_generator(seed, "classifier", epoch, device=device),
                              device=device)
        moved = random_affine(x, p.augment.shift, p.augment.rotate,
                              torch_generator(seed, "classifier-augment", epoch, device=device))
        total = torch.zeros((), device=device)
        for start in range(0, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            with autocast():
                loss = F.cross_entropy(model(moved[idx]).float(), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.detach() * len(idx)
        progress.step(f"epoch {epoch}/{p.epochs}  train loss {float(total) / len(perm):.4f}")  # one sync per epoch
    model.eval()
    with torch.no_grad():
        raw = torch.cat([model.body(x[i:i + 1000]) for i in range(0, len(x), 1000)])
        model.feature_mean.copy_(raw.mean(0))
        model.feature_std.copy_(raw.std(0).clamp_min(1e-6))
    return model


def train_evaluator(train: Split, params: Params, reference_n: int, device: torch.device) -> tuple[Classifier, Tensor]:
    """The `classifier` stage's network: trained on the training split less `reference_n` random rows, which
    it never sees, so that real-vs-real FID (those rows against test images) is a fair reference. Returns the
    network and those rows."""
    learnt, held_out = reference_holdout(len(train), reference_n, derive_seed(params.seed, "reference"))
    model = train_classifier(train.subset(learnt), params.classifier, params.train.batch_size,
                             derive_seed(params.seed, "classifier"), device,
                             autocast_for(device, params.train.precision))
    return model, torch.from_numpy(held_out)


@torch.no_grad()
def accuracy(model: Classifier, split: Split, device: torch.device) -> float:
    _, probs = features_and_probs(model, split.clean.to(device))
    return float((probs.argmax(1) == split.labels).float().mean())
