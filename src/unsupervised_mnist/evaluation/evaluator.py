"""Training the evaluator (models/classifier.py's CNN) with the engine, on the clean training split less the
rows held out for the real-vs-real reference: the `classifier` stage."""

from __future__ import annotations

import torch
from torch import Tensor

from unsupervised_mnist.config import Params, Section
from unsupervised_mnist.data.dataset import Split
from unsupervised_mnist.evaluation.classifier import build_classifier
from unsupervised_mnist.evaluation.sample_quality import reference_holdout
from unsupervised_mnist.models.classifier import Classifier, ClassifierObjective
from unsupervised_mnist.seeding import derive_seed
from unsupervised_mnist.training.engine import FitSpec, fit


def train_classifier(train: Split, val: Split, p: Section, batch_size: int, seed: int, device: torch.device,
                     precision: str) -> Classifier:
    """Supervised training by the engine: data on the device, seeded permutations and augmentation, bf16 autocast
    for the training passes where the chip has it. The features are computed in fp32 afterwards and their
    statistics on the training images fix the scale of FID and KID."""
    torch.manual_seed(seed)
    # Channels-last convolutions: oneDNN's faster kernels for this CNN's max pooling and small convolutions
    # (15-35 % more images/s in bf16 here, bench/headroom.py --memory-format); the models gain nothing from it.
    model = build_classifier(p).to(device, memory_format=torch.channels_last)
    x = train.clean.to(device)
    objective = ClassifierObjective(model, train.labels.to(device), val.labels.to(device), p, device, precision)
    spec = FitSpec(name="classifier", epochs=p.epochs, batch_size=batch_size, seed=seed, noise_kind="gaussian",
                   noise_level=0.0, schedule="cosine", shift=p.augment.shift, rotate=p.augment.rotate)
    fit(objective, x, val.clean.to(device), val.clean.to(device), spec)
    model.eval()
    with torch.no_grad():
        raw = torch.cat([model.body(x[i:i + 1000]) for i in range(0, len(x), 1000)])
        model.feature_mean.copy_(raw.mean(0))
        model.feature_std.copy_(raw.std(0).clamp_min(1e-6))
    return model


def train_evaluator(train: Split, val: Split, params: Params, reference_n: int,
                    device: torch.device) -> tuple[Classifier, Tensor]:
    """The `classifier` stage's network: trained on the training split less `reference_n` random rows, which
    it never sees, so that real-vs-real FID (those rows against test images) is a fair reference. Returns the
    network and those rows."""
    learnt, held_out = reference_holdout(len(train), reference_n, derive_seed(params.seed, "reference"))
    model = train_classifier(train.subset(learnt), val, params.classifier, params.train.batch_size,
                             derive_seed(params.seed, "classifier"), device, params.train.precision)
    return model, torch.from_numpy(held_out)
