"""The evaluator (models/classifier.py's CNN): its features and class probabilities for FID/KID and the classifier
score, read back from models/classifier.pt (evaluation/evaluator.py trains it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unsupervised_mnist.config import Section
from unsupervised_mnist.data.dataset import Split
from unsupervised_mnist.errors import DataError
from unsupervised_mnist.models.classifier import Classifier


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


@torch.no_grad()
def accuracy(model: Classifier, split: Split, device: torch.device) -> float:
    _, probs = features_and_probs(model, split.clean.to(device))
    return float((probs.argmax(1) == split.labels).float().mean())


def load_classifier(device: torch.device, path: str = "models/classifier.pt") -> Classifier:
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run `dvc repro classifier`)") from None
    model = Classifier(**state["config"]).to(device)
    model.load_state_dict(state["state_dict"])
    return model.eval()
