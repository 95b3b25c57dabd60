"""A small CNN trained on the clean training split: its penultimate layer is the feature space for
FID/KID and its softmax gives the classifier score and the class histogram of generated samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unsupervised_mnist.data.dataset import Split
from unsupervised_mnist.progress import Progress
from unsupervised_mnist.seeding import torch_generator

FEATURE_DIM = 128


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, FEATURE_DIM),
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(FEATURE_DIM, 10))
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


@torch.no_grad()
def features_and_probs(model: Classifier, x: torch.Tensor, batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    feats, probs = [], []
    for start in range(0, len(x), batch):
        raw = model.body(x[start:start + batch])  # once for both: the conv layers are the cost
        feats.append(model.standardise(raw))
        probs.append(F.softmax(model.head(raw), dim=1))
    return torch.cat(feats).cpu(), torch.cat(probs).cpu()


def train_classifier(train: Split, epochs: int, lr: float, batch_size: int, seed: int,
                     device: torch.device) -> Classifier:
    """Plain supervised training, with the engine's habits: data on the device, seeded permutations."""
    torch.manual_seed(seed)
    model = Classifier().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    x, y = train.clean.to(device), train.labels.to(device)
    progress = Progress("classifier", epochs)
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(len(x), generator=torch_generator(seed, "classifier", epoch, device=device),
                              device=device)
        total = torch.zeros((), device=device)
        for start in range(0, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        progress.step(f"epoch {epoch}/{epochs}  train loss {float(total) / len(perm):.4f}")  # one sync per epoch
    model.eval()
    with torch.no_grad():
        raw = torch.cat([model.body(x[i:i + 1000]) for i in range(0, len(x), 1000)])
        model.feature_mean.copy_(raw.mean(0))
        model.feature_std.copy_(raw.std(0).clamp_min(1e-6))
    return model


@torch.no_grad()
def accuracy(model: Classifier, split: Split, device: torch.device) -> float:
    _, probs = features_and_probs(model, split.clean.to(device))
    return float((probs.argmax(1) == split.labels).float().mean())
