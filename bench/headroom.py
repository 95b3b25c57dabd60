"""How close each training step runs to the chip's peak: is a gain left in the kernels, or only in the recipe?

For every training step of the pipeline at its default settings (params.yaml, or --params and -S overrides):
the AE's denoiser step, its DEC clustering step, the VAE's, the GAN's discriminator + generator step and its
encoder step, the evaluator's: images/s, FLOP per image (torch.utils.flop_counter.FlopCounterMode: the matrix
products and convolutions of forward and backward, 2 FLOP a multiply-add), achieved GFLOP/s, and its share of
the dense GEMM peak measured in the same run at the same precision (the best of several rounds of a 1024 x 1024
matmul in the compute dtype). Then a torch.profiler summary of where one step's time goes, for the step with
the lowest share.

    python bench/headroom.py [--precision auto|fp32|bf16] [--steps 30] [-S key=value ...]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable

import torch
import yaml

from unsupervised_mnist.device import make_deterministic, resolve_precision, select_device
from unsupervised_mnist.models.classifier import Classifier, ClassifierObjective
from unsupervised_mnist.models.registry import build, parse_params, spec
from unsupervised_mnist.overrides import set_overrides
from unsupervised_mnist.stage import keep_freed_memory
from unsupervised_mnist.training.distributed import SINGLE_PROCESS
from unsupervised_mnist.training.train import global_batch

N_IMAGES = 3600  # the default training split's size
MEMORY_FORMAT = [torch.contiguous_format]  # --memory-format channels_last: the convolutions' weights so


def gemm_peak(device: torch.device, precision: str, rounds: int = 7) -> float:
    """GFLOP/s of a 1024 x 1024 matmul on tensors already in the steps' compute dtype (no casts timed), the best
    of several rounds: a single round on a shared or clock-scaling machine reads anything from half the peak up."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = (torch.randn(1024, 1024, device=device, dtype=dtype) for _ in range(2))
    for _ in range(5):
        a @ b
    best, k = float("inf"), 20
    for _ in range(rounds):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(k):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - started) / k)
    return 2 * 1024**3 / best / 1e9


def step_flops(step: Callable[[], None]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def time_steps(step: Callable[[], None], warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def model_steps(params, device) -> dict[str, tuple[int, Callable[[], None]]]:
    """name -> (batch size, one training step), every model of params.models and each of its phases."""
    images = torch.rand((N_IMAGES, 1, 28, 28), generator=torch.Generator().manual_seed(0)).to(device)
    rng = torch.Generator(device=device).manual_seed(0)
    steps = {}
    for name in params.models:
        section = params.model(name)
        torch.manual_seed(0)
        model, _ = build(name, params)
        objective = spec(name).objective(model.to(device, memory_format=MEMORY_FORMAT[0]), params, section, device)
        model.train()
        batch = global_batch(section, params, SINGLE_PROCESS)
        epochs = spec(name).objective.total_epochs(section)
        phases = {section.epochs: name}  # the last epoch of each phase: its step
        if epochs > section.epochs:
            phases[epochs] = f"{name} phase 2"
        for epoch, label in phases.items():
            def step(objective=objective, epoch=epoch, epochs=epochs, batch=batch):
                rows = torch.randint(0, N_IMAGES, (batch,), generator=rng, device=device)
                clean = images[rows]
                objective.train_step(clean, (clean + 0.5 * torch.randn_like(clean)).clamp(0, 1), rng, rows)

            def start(objective=objective, epoch=epoch, epochs=epochs):
                with torch.no_grad():
                    objective.start_epoch(epoch, epochs, images)

            steps[label] = (batch, step, start)
    return steps


def evaluator_step(params, device, precision):
    p = params.classifier
    images = torch.rand((N_IMAGES, 1, 28, 28), device=device)
    labels = torch.randint(0, 10, (N_IMAGES,), device=device)
    torch.manual_seed(0)
    model = Classifier(tuple(p.channels), p.dropout).to(device, memory_format=MEMORY_FORMAT[0]).train()
    objective = ClassifierObjective(model, labels, labels, p, device, precision)
    batch = params.train.batch_size

    def step():
        rows = torch.randint(0, N_IMAGES, (batch,), device=device)
        objective.train_step(images[rows], images[rows], None, rows)

    return batch, step, lambda: None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default=None, help="train.precision (default: params.yaml's)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--memory-format", choices=("contiguous", "channels_last"), default="contiguous",
                        help="the models' memory format (the pipeline trains in channels_last)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    keep_freed_memory()  # as every stage process does
    MEMORY_FORMAT[0] = torch.channels_last if args.memory_format == "channels_last" else torch.contiguous_format
    overrides = [*args.set, *([f"train.precision={args.precision}"] if args.precision else []), "ae.dec.init=kmeans"]
    params = parse_params(set_overrides(yaml.safe_load(open(args.params)), overrides), "overrides")
    device = select_device(params.train.device)
    make_deterministic(device, params.train.threads)
    precision = resolve_precision(params.train.precision, device)
    peak = gemm_peak(device, precision)
    print(f"device {device}, {torch.get_num_threads()} threads, precision {precision}: dense GEMM peak "
          f"{peak:.0f} GFLOP/s (1024 x 1024 matmul, best of 7 rounds)\n")
    steps = {**model_steps(params, device), "evaluator": evaluator_step(params, device, params.train.precision)}
    print(f"{'step':<22}{'batch':>6}{'images/s':>10}{'MFLOP/image':>13}{'GFLOP/s':>9}{'of peak':>9}")
    rows = []
    for label, (batch, step, start) in steps.items():
        start()
        flops = step_flops(step)
        seconds = time_steps(step, warmup=5, steps=args.steps)
        rows.append((label, step, flops / seconds / 1e9 / peak))
        print(f"{label:<22}{batch:>6}{batch / seconds:>10.0f}{flops / batch / 1e6:>13.1f}"
              f"{flops / seconds / 1e9:>9.1f}{100 * flops / seconds / 1e9 / peak:>8.0f} %", flush=True)
    label, step, _ = min(rows, key=lambda row: row[2])
    print(f"\nwhere one step of `{label}` (the lowest share) spends its time (torch.profiler, 10 steps):")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile, \
            contextlib.nullcontext():
        for _ in range(10):
            step()
    print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))


if __name__ == "__main__":
    main()
