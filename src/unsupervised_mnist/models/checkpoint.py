"""A trained model on disk: models/<name>.pt holds its name, the plain-dict config that rebuilds it, whether it
was trained on noisy inputs, and its weights; read back with weights_only=True (no code runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from unsupervised_mnist.errors import DataError
from unsupervised_mnist.io import atomic_path
from unsupervised_mnist.models.registry import spec


def save_checkpoint(path: str | Path, name: str, model: nn.Module, config: dict[str, Any], denoising: bool) -> None:
    with atomic_path(path) as tmp:
        torch.save({"model": name, "config": config, "state_dict": model.state_dict(), "denoising": denoising}, tmp)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The model in evaluation mode; `model.denoising` says whether it learnt from noisy inputs."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run `dvc repro train`)") from None
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise DataError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0]})") from None
    model = spec(payload["model"]).network(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.denoising = bool(payload.get("denoising", False))
    return model.to(device).eval()
