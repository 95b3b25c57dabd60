"""The models behind one interface: `latent_dim`, `encode`, `decode`, and `sample`
where they generate. A checkpoint holds the state_dict and the plain-dict config that rebuilds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from unsupervised_mnist.config import Params
from unsupervised_mnist.errors import DataError
from unsupervised_mnist.io import atomic_path
from unsupervised_mnist.models.ae import AutoEncoder
from unsupervised_mnist.models.gan import GAN
from unsupervised_mnist.models.vae import VAE


def model_config(name: str, params: Params) -> dict[str, Any]:
    """The architecture part of a model's params: exactly what `build` needs."""
    section = getattr(params, name)
    if name == "gan":
        return {"latent_dim": params.latent_dim, "channels": list(section.channels),
                "spectral_norm": section.spectral_norm, "fc": section.fc, "d_dropout": section.d_dropout}
    config = {"latent_dim": params.latent_dim, "arch": section.arch, "hidden": list(section.hidden),
              "channels": list(section.channels), "fc": section.fc}
    if name == "ae" and section.dec.epochs:
        config["clusters"] = section.dec.clusters
    return config


def build(name: str, config: dict[str, Any]) -> nn.Module:
    cls = {"ae": AutoEncoder, "vae": VAE, "gan": GAN}[name]
    return cls(**config)


def save_checkpoint(path: str | Path, name: str, model: nn.Module, config: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save({"model": name, "config": config, "state_dict": model.state_dict()}, tmp)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from models/<name>.pt; the file is read with weights_only=True (no code runs)."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run `dvc repro train`)") from None
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise DataError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0]})") from None
    model = build(payload["model"], payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()
