"""The evaluator's network: a small CNN trained on the clean training split (evaluation/classifier.py). Its
penultimate layer is the feature space for FID/KID and its softmax gives the classifier score and the class
histogram of generated samples. Not one of the pipeline's `models`: it is part of the task they are judged on.

Sample-quality numbers are only as sharp as this network: a 95 %-accurate classifier scores real digits well
below a 99 %-accurate one, and its features blur good and bad samples together. So it is trained like a small
supervised model worth its name: batch norm, dropout, random shifts and turns of each image redrawn every epoch,
AdamW with a cosine schedule, by the same engine as the models."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unsupervised_mnist.config import Section
from unsupervised_mnist.models.objective import Objective, adam

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


class ClassifierObjective(Objective):
    """Cross-entropy on the (moved) training images; validation loss and accuracy on the clean validation split."""

    def __init__(self, model: Classifier, labels: torch.Tensor, val_labels: torch.Tensor, section: Section,
                 device: torch.device, precision: str):
        super().__init__(model, {"classifier": model}, denoising=False, device=device, precision=precision)
        self.labels, self.val_labels = labels, val_labels
        self.optimizers = {"classifier": adam(model.parameters(), section.lr, weight_decay=section.weight_decay)}

    def train_step(self, clean, noisy, generator, rows):
        with self.amp():
            logits = self.nets["classifier"](clean)
        loss = F.cross_entropy(logits.float(), self.labels[rows])
        self.update("classifier", loss)
        return {"loss": loss.detach()}

    def val_losses(self, clean, noisy, generator, rows):
        logits, labels = self.model(clean).float(), self.val_labels[rows]
        return {"loss": F.cross_entropy(logits, labels), "accuracy": (logits.argmax(1) == labels).float().mean()}
