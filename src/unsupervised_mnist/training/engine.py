"""The training engine, for every network the pipeline trains (the models and the evaluator): the whole split
on the device, batches drawn by index, one host sync per epoch.

Per epoch: a permutation, a fresh draw of augmentation and of training noise, each from a generator seeded by
(seed, epoch), so an epoch's batches do not depend on what ran before it and a resumed run replays
exactly what an uninterrupted one would have done. Losses are summed on the device; the first step
with a non-finite loss is recorded there too, and everything is read in one transfer at the end of
the epoch. The learning rate follows a torch.optim.lr_scheduler (warm-up, then constant or cosine) stepped
after every update. A checkpoint (model, optimizers, schedules, history) is written atomically after an epoch
once CHECKPOINT_EVERY_S have passed since the last: a kill loses at most that much work, and a short epoch does
not pay for writing tens of megabytes.

Data parallelism (torchrun, see distributed.py): each rank takes a disjoint, equal-sized shard of
every permutation, in steps of `batch_size / world_size` images, so a step still sees `batch_size`
images across the ranks; the epoch's means are averaged over the ranks in the same single sync.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from unsupervised_mnist.data.augment import random_affine
from unsupervised_mnist.data.noise import add_noise
from unsupervised_mnist.errors import TrainingError
from unsupervised_mnist.io import atomic_path
from unsupervised_mnist.models.objective import Objective
from unsupervised_mnist.progress import Progress
from unsupervised_mnist.seeding import torch_generator
from unsupervised_mnist.training.distributed import SINGLE_PROCESS, World, max_over_ranks, mean_over_ranks, wrap

VAL_BATCH = 1000
CHECKPOINT_EVERY_S = 30.0


@dataclass(frozen=True)
class FitSpec:
    """What to train, for how long, with which noise, and where its resumable state lives."""

    name: str
    epochs: int
    batch_size: int
    seed: int
    noise_kind: str
    noise_level: float
    checkpoint: Path | None = None
    world: World = SINGLE_PROCESS
    schedule: str = "constant"  # learning rate per step: constant, or cosine to 0 after the warm-up
    warmup_epochs: int = 0
    schedule_epochs: int | None = None  # the schedule's span (None: all epochs); a later phase runs past its end
    shift: float = 0.0  # augmentation of the clean images (pixels, degrees); 0 and 0: none
    rotate: float = 0.0


def lr_factor(spec: FitSpec, progress: float) -> float:
    """The learning rate's multiplier at `progress` epochs into training (fractional within an epoch):
    a linear warm-up, then constant or half a cosine down to 0."""
    span = spec.schedule_epochs or spec.epochs
    warmup = min(spec.warmup_epochs, span - 1)  # a short run (tests, -S epochs=2) still trains
    if progress < warmup:
        return progress / warmup
    if spec.schedule == "constant":
        return 1.0
    done = (progress - warmup) / (span - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))


def schedules(objective: Objective, spec: FitSpec, steps_per_epoch: int) -> list[torch.optim.lr_scheduler.LRScheduler]:
    """One LambdaLR per scheduled optimizer, stepped after every update: step k of epoch e (from 0) runs at
    lr_factor(e + k / steps_per_epoch), a function of the step alone, so a resumed run sets exactly the rates
    an uninterrupted one would have."""
    def factor(step: int) -> float:
        epoch, within = divmod(step, steps_per_epoch)
        return lr_factor(spec, epoch + within / steps_per_epoch)

    return [torch.optim.lr_scheduler.LambdaLR(optimizer, factor) for optimizer in objective.scheduled_optimizers()]


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)  # a row per epoch, deterministic: metrics
    seconds: list[float] = field(default_factory=list)  # wall time per epoch run in this process: timings


def _save_state(spec: FitSpec, objective: Objective, lr_schedules: list, epoch: int,
                history: list[dict[str, float]]) -> None:
    if spec.checkpoint is None or not spec.world.is_main:
        return
    state = {
        "epoch": epoch,
        "model": objective.model.state_dict(),
        "optimizers": {k: opt.state_dict() for k, opt in objective.optimizers.items()},
        "schedules": [schedule.state_dict() for schedule in lr_schedules],
        "objective": objective.extra_state(),
        "history": history,
    }
    with atomic_path(spec.checkpoint) as tmp:
        torch.save(state, tmp)


def _load_state(spec: FitSpec, objective: Objective, lr_schedules: list) -> tuple[int, list[dict[str, float]]]:
    """Resume from the checkpoint if there is one: the first epoch still to run, and the history so far."""
    if spec.checkpoint is None or not spec.checkpoint.is_file():
        return 1, []
    state = torch.load(spec.checkpoint, map_location=next(objective.model.parameters()).device, weights_only=True)
    objective.model.load_state_dict(state["model"])
    for key, optimizer in objective.optimizers.items():
        optimizer.load_state_dict(state["optimizers"][key])
    for schedule, schedule_state in zip(lr_schedules, state["schedules"], strict=True):
        schedule.load_state_dict(schedule_state)
    objective.load_extra_state(state["objective"])
    return int(state["epoch"]) + 1, list(state["history"])


@torch.no_grad()
def _validate(objective: Objective, val_clean: torch.Tensor, val_noisy: torch.Tensor, seed: int) -> dict:
    objective.model.eval()
    generator = torch_generator(seed, "validation", device=val_clean.device)  # the same draws every epoch
    sums: dict[str, torch.Tensor] = {}
    for start in range(0, len(val_clean), VAL_BATCH):
        rows = torch.arange(start, min(start + VAL_BATCH, len(val_clean)), device=val_clean.device)
        for key, value in objective.val_losses(val_clean[rows], val_noisy[rows], generator, rows).items():
            sums[key] = sums.get(key, 0) + value.float() * len(rows)
    objective.model.train()
    return {key: total / len(val_clean) for key, total in sums.items()}


def steps_per_epoch(n: int, spec: FitSpec) -> int:
    """Steps in each epoch of this rank: equal shards of every permutation, in batches of batch_size / world."""
    world_size = spec.world.world_size
    return math.ceil((n - n % world_size) // world_size / (spec.batch_size // world_size))


def run_epoch(objective: Objective, train_clean: torch.Tensor, spec: FitSpec, epoch: int,
              lr_schedules: list) -> tuple[dict, torch.Tensor]:
    """One pass over this rank's shard. Returns mean losses and the first non-finite step (-1 if none),
    all still on the device."""
    device = train_clean.device
    rank, world_size = spec.world.rank, spec.world.world_size
    perm = torch.randperm(len(train_clean), generator=torch_generator(spec.seed, "perm", epoch, device=device),
                          device=device)
    perm = perm[: len(perm) - len(perm) % world_size][rank::world_size]  # equal shards: equal step counts
    batch_size = spec.batch_size // world_size  # per rank: a step still sees batch_size images in all
    train_clean = random_affine(train_clean, spec.shift, spec.rotate,
                                torch_generator(spec.seed, "augment", epoch, device=device))
    noisy_all = train_clean  # a clean -> clean objective reads no noise: skip the draw
    if objective.denoising:
        noisy_all = add_noise(train_clean, spec.noise_kind, spec.noise_level,
                              torch_generator(spec.seed, "train-noise", epoch, device=device))
    # Each rank draws its own latents and noise samples (one process keeps the seed it always had).
    step_generator = torch_generator(spec.seed, "steps", epoch, *(("rank", rank) if world_size > 1 else ()),
                                     device=device)
    sums: dict[str, torch.Tensor] = {}
    bad_step = torch.full((), -1, dtype=torch.long, device=device)
    objective.start_epoch(epoch, spec.epochs, train_clean)
    for step, start in enumerate(range(0, len(perm), batch_size)):
        idx = perm[start:start + batch_size]
        losses = objective.train_step(train_clean[idx], noisy_all[idx], step_generator, idx)
        for schedule in lr_schedules:
            schedule.step()
        finite = torch.stack([v.float() for v in losses.values()]).isfinite().all()
        bad_step = torch.where((bad_step < 0) & ~finite, step, bad_step)
        for key, value in losses.items():
            sums[key] = sums.get(key, 0) + value.float() * len(idx)
    objective.end_epoch(torch_generator(spec.seed, "end-epoch", epoch, device=device))
    return {key: total / len(perm) for key, total in sums.items()}, bad_step


def fit(objective: Objective, train_clean: torch.Tensor, val_clean: torch.Tensor, val_noisy: torch.Tensor,
        spec: FitSpec, *, on_epoch: Callable[[dict[str, float]], None] | None = None,
        log: Callable[[str], None] = print) -> FitResult:
    """Train up to spec.epochs (resuming from spec.checkpoint); `on_epoch` gets each epoch's row as soon
    as that epoch is done (live tracking). Under torchrun the objective's parts train through DDP."""
    objective.nets = {name: wrap(part, spec.world) for name, part in objective.parts.items()}
    lr_schedules = schedules(objective, spec, steps_per_epoch(len(train_clean), spec))
    first, history = _load_state(spec, objective, lr_schedules)
    result = FitResult(history)
    if first > 1:
        log(f"{spec.name}: resuming from {spec.checkpoint} after epoch {first - 1}")
    objective.model.train()
    progress = Progress(spec.name, spec.epochs, done=first - 1, unit="epoch") if spec.world.is_main else None
    saved = time.perf_counter()
    for epoch in range(first, spec.epochs + 1):
        started = time.perf_counter()
        train_means, bad_step = run_epoch(objective, train_clean, spec, epoch, lr_schedules)
        train_values = mean_over_ranks(torch.stack(list(train_means.values())), spec.world)
        bad_step = max_over_ranks(bad_step, spec.world)  # every rank stops together on a NaN anywhere
        val_means = _validate(objective, val_clean, val_noisy, spec.seed)  # the same on every rank
        keys = [f"train/{k}" for k in train_means] + [f"val/{k}" for k in val_means]
        # The one host<->device sync of the epoch.
        values = torch.stack([bad_step.float(), *train_values, *val_means.values()]).tolist()
        if values[0] >= 0:
            raise TrainingError(
                f"{spec.name}: loss became NaN or Inf at epoch {epoch}, step {int(values[0])} "
                f"(lower the learning rate); no model file was written"
            )
        row = {"epoch": epoch, **{k: round(v, 6) for k, v in zip(keys, values[1:])}}
        result.history.append(row)
        if time.perf_counter() - saved >= CHECKPOINT_EVERY_S and epoch < spec.epochs:
            _save_state(spec, objective, lr_schedules, epoch, result.history)
            saved = time.perf_counter()
        result.seconds.append(time.perf_counter() - started)
        if progress is not None:
            progress.step("  ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        if on_epoch is not None:
            on_epoch(row)
    return result
