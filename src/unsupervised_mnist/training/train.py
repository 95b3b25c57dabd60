"""Train one model from params: data to the device, fit, then write the model and its metrics."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from unsupervised_mnist.config import Params
from unsupervised_mnist.data.dataset import PREPARED_DIR, load_split
from unsupervised_mnist.device import make_deterministic, select_device
from unsupervised_mnist.errors import ParamsError
from unsupervised_mnist.io import sha256_file, write_bytes, write_json
from unsupervised_mnist.models import build, model_config, save_checkpoint
from unsupervised_mnist.seeding import derive_seed
from unsupervised_mnist.training.distributed import World, setup, world_from_env
from unsupervised_mnist.training.engine import FitSpec, fit
from unsupervised_mnist.training.objectives import make_objective

CHECKPOINT_DIR = Path(".checkpoints")


@dataclass
class Outputs:
    model: Path
    metrics: Path
    curves: Path
    timings: Path

    @classmethod
    def for_model(cls, name: str, root: Path = Path(".")) -> Outputs:
        """The paths dvc.yaml declares for train@<name>, under `root` (tests write elsewhere)."""
        return cls(root / f"models/{name}.pt", root / f"metrics/train/{name}.json",
                   root / f"plots/train/{name}.csv", root / f"reports/timings/{name}.json")


def checkpoint_key(name: str, params: Params, train_file: Path) -> str:
    """Everything that shapes the run: its params and the exact training data."""
    return f"{name}-{params.model_hash(name)}-{sha256_file(train_file)[:12]}"


def curves_csv(history: list[dict[str, float]]) -> bytes:
    buffer = io.StringIO()
    columns = list(history[0])
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.replace("/", "_") for c in columns])
    writer.writerows([[row[c] for c in columns] for row in history])
    return buffer.getvalue().encode()


def train_model(name: str, params: Params, *, prepared_dir: Path = PREPARED_DIR, outputs: Outputs | None = None,
                checkpoint_dir: Path = CHECKPOINT_DIR, world: World | None = None,
                on_epoch: Callable[[dict[str, float]], None] | None = None) -> list[dict[str, float]]:
    """Train `name` ('ae', 'vae' or 'gan') and return its history (a row per epoch). Under torchrun every
    rank trains its shard and only rank 0 writes the outputs."""
    outputs = outputs or Outputs.for_model(name)
    section = getattr(params, name)
    world = world or world_from_env()
    batch_size, batch_key = ((section.batch_size, f"{name}.batch_size") if section.batch_size
                             else (params.train.batch_size, "train.batch_size"))
    if batch_size % world.world_size:
        raise ParamsError(f"params.yaml: {batch_key}={batch_size} must be divisible by the "
                          f"{world.world_size} training processes (it is the global batch)")
    device = setup(world, select_device(params.train.device))
    make_deterministic(device, params.train.threads)
    started = time.perf_counter()

    train, val = load_split("train", prepared_dir), load_split("val", prepared_dir)
    train_clean = train.clean.to(device)
    val_clean, val_noisy = val.clean.to(device), val.noisy.to(device)

    torch.manual_seed(derive_seed(params.seed, "init", name))  # weights are drawn on the CPU: same on any device
    config = model_config(name, params)
    model = build(name, config).to(device)
    if params.train.compile:
        for child in model.children():
            child.compile()  # in place: the state_dict keeps its keys
    objective = make_objective(name, model, params, device, world)

    spec = FitSpec(
        name=name, epochs=section.epochs, batch_size=batch_size, seed=params.seed,
        noise_kind=params.noise.kind, noise_level=params.noise.level, world=world,
        schedule=section.schedule, warmup_epochs=section.warmup_epochs,
        shift=section.augment.shift, rotate=section.augment.rotate,
        checkpoint=checkpoint_dir / f"{checkpoint_key(name, params, prepared_dir / 'train.npz')}.pt",
    )
    result = fit(objective, train_clean, val_clean, val_noisy, spec, on_epoch=on_epoch if world.is_main else None)
    if not world.is_main:
        return result.history

    save_checkpoint(outputs.model, name, model, config)
    final = result.history[-1]
    # The numbers compared across runs (`dvc metrics show`); every loss of every epoch is in the curves CSV.
    write_json(outputs.metrics, {"epochs": final["epoch"], **{k: final[k] for k in ("val/loss", "val/recon_mse")
                                                              if k in final}})
    write_bytes(outputs.curves, curves_csv(result.history))
    wall, train_s = time.perf_counter() - started, sum(result.seconds)
    write_json(outputs.timings, {
        "device": str(device), "processes": world.world_size, "wall_s": round(wall, 2),
        "epochs_run": len(result.seconds), "train_s": round(train_s, 2),
        "images_per_s": round(len(train) * len(result.seconds) / max(train_s, 1e-9), 1),
    })
    spec.checkpoint.unlink(missing_ok=True)  # finished: a rerun starts fresh
    return result.history
