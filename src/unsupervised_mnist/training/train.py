"""Train one registered model from params: data to the device, fit, then write the model and its metrics."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from unsupervised_mnist.config import Params, Section
from unsupervised_mnist.data.dataset import PREPARED_DIR, load_split
from unsupervised_mnist.device import make_deterministic, resolve_precision, select_device
from unsupervised_mnist.errors import ParamsError
from unsupervised_mnist.io import sha256_file, write_bytes, write_json
from unsupervised_mnist.models.checkpoint import save_checkpoint
from unsupervised_mnist.models.objective import Objective
from unsupervised_mnist.models.registry import build, spec
from unsupervised_mnist.seeding import derive_seed
from unsupervised_mnist.training.distributed import World, setup, world_from_env
from unsupervised_mnist.training.engine import FitSpec, fit

CHECKPOINT_DIR = Path(".checkpoints")


@dataclass
class Outputs:
    model: Path
    metrics: Path
    curves: Path

    @classmethod
    def for_model(cls, name: str, root: Path = Path(".")) -> Outputs:
        """The paths dvc.yaml declares for train@<name>, under `root` (tests write elsewhere)."""
        return cls(root / f"models/{name}.pt", root / f"metrics/train/{name}.json", root / f"plots/train/{name}.csv")


@dataclass(frozen=True)
class Trained:
    history: list[dict[str, float]]  # a row per epoch: what metrics and curves are made of (deterministic)
    timing: dict[str, Any]  # where and how fast it ran: the stage's timings and the run's tags (varies)


def checkpoint_key(name: str, params: Params, train_file: Path) -> str:
    """Everything that shapes the run: its params and the exact training data."""
    return f"{name}-{params.model_hash(name)}-{sha256_file(train_file)[:12]}"


def curves_csv(history: list[dict[str, float]]) -> bytes:
    """Every loss of every epoch, a row each (epoch, split, loss, value): the tidy form that dvc.yaml's `losses`
    template draws as a small chart per loss, whatever losses a model has."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["epoch", "split", "loss", "value"])
    writer.writerows([[row["epoch"], *key.split("/", 1), value] for row in history
                      for key, value in row.items() if key != "epoch"])
    return buffer.getvalue().encode()


def run_conditions(params: Params, device: torch.device, world: World) -> dict[str, Any]:
    """What a run's speed and exact bytes depend on besides the params: resolved device and precision,
    CPU threads, processes, torch build."""
    return {"device": str(device), "precision": resolve_precision(params.train.precision, device),
            "threads": torch.get_num_threads(), "processes": world.world_size, "torch": torch.__version__}


def global_batch(section: Section, params: Params, world: World) -> int:
    """The model's batch (its own, else train.batch_size): the global one, split evenly over the processes."""
    batch_size, key = ((section.batch_size, section.key("batch_size")) if section.batch_size
                       else (params.train.batch_size, "train.batch_size"))
    if batch_size % world.world_size:
        raise ParamsError(f"params.yaml: {key}={batch_size} must be divisible by the "
                          f"{world.world_size} training processes (it is the global batch)")
    return batch_size


def fit_spec(name: str, params: Params, section: Section, epochs: int, batch_size: int, world: World,
             checkpoint: Path | None) -> FitSpec:
    """How the engine trains `name`: its epochs (every phase), batch, schedule, augmentation and noise."""
    return FitSpec(name=name, epochs=epochs, batch_size=batch_size, seed=params.seed, noise_kind=params.noise.kind,
                   noise_level=params.noise.level, world=world, schedule=section.schedule,
                   warmup_epochs=section.warmup_epochs, schedule_epochs=section.epochs,
                   shift=section.augment.shift, rotate=section.augment.rotate, checkpoint=checkpoint)


def compile_modules(model: torch.nn.Module, objective: Objective) -> None:
    """train.compile: torch.compile every part in place (the state_dict keeps its keys), after the objective has
    made its copies (a deep copy of a compiled module runs eagerly): the model's own parts and the trained
    parts it does not hold (the GAN's live generator beside its average)."""
    held = set(model.modules())
    for module in [*model.children(), *(p for p in objective.parts.values() if p not in held)]:
        module.compile()


def write_outputs(outputs: Outputs, name: str, objective: Objective, config: dict, history: list[dict]) -> None:
    save_checkpoint(outputs.model, name, objective.model, config, objective.denoising)
    final = history[-1]
    # The numbers compared across runs (`dvc metrics show`); every loss of every epoch is in the curves CSV.
    write_json(outputs.metrics, {"epochs": final["epoch"], **{k: final[k] for k in ("val/loss", "val/recon_mse")
                                                              if k in final}})
    write_bytes(outputs.curves, curves_csv(history))


def train_model(name: str, params: Params, *, prepared_dir: Path = PREPARED_DIR, outputs: Outputs | None = None,
                checkpoint_dir: Path = CHECKPOINT_DIR, world: World | None = None,
                on_epoch: Callable[[dict[str, float]], None] | None = None) -> Trained:
    """Train model `name` (one of params.models): its history (a row per epoch) and timing. Under torchrun every
    rank trains its shard and only rank 0 writes the outputs."""
    world, model_spec, section = world or world_from_env(), spec(name), params.model(name)
    checkpoint = checkpoint_dir / f"{checkpoint_key(name, params, prepared_dir / 'train.npz')}.pt"
    fit_as = fit_spec(name, params, section, model_spec.objective.total_epochs(section),
                      global_batch(section, params, world), world, checkpoint)
    device = setup(world, select_device(params.train.device))
    make_deterministic(device, params.train.threads)
    train, val = load_split("train", prepared_dir), load_split("val", prepared_dir)

    torch.manual_seed(derive_seed(params.seed, "init", name))  # weights are drawn on the CPU: same on any device
    model, config = build(name, params)
    model = model.to(device)
    objective = model_spec.objective(model, params, section, device)
    if params.train.compile:
        compile_modules(model, objective)
    result = fit(objective, train.clean.to(device), val.clean.to(device), val.noisy.to(device), fit_as,
                 on_epoch=on_epoch if world.is_main else None)
    train_s = sum(result.seconds)
    timing = {**run_conditions(params, device, world), "epochs_run": len(result.seconds), "train_s": round(train_s, 2),
              "images_per_s": round(len(train) * len(result.seconds) / max(train_s, 1e-9), 1)}
    if world.is_main:
        write_outputs(outputs or Outputs.for_model(name), name, objective, config, result.history)
        checkpoint.unlink(missing_ok=True)  # finished: a rerun starts fresh
    return Trained(result.history, timing)
