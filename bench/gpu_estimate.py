"""How long bench/gpu.sh should take on a GPU, before a GPU is lent: step counts times per-step times.

A small network's training step on a large GPU is bound by launching its kernels, not by arithmetic: its time
is about what the host spends issuing the step's operations. That host time is measured here as one step at
batch 1 on this machine's CPU (the arithmetic is then negligible, what remains is Python, dispatch and one
kernel per operation), against the arithmetic at the GPU's dense bf16 rate (--tflops), whichever is larger.
Step counts come from params.yaml (the default pipeline) and from bench/train_speed.py's epochs (full-size
Fashion-MNIST, three variants, warm-up and rounds); process start-ups, evaluation and the data stages are added
at the seconds they take here (their CPU work is the same there).

    python bench/gpu_estimate.py [--tflops 790] [--startup 6]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time

import torch
import yaml

from unsupervised_mnist.models.registry import build, parse_params, spec
from unsupervised_mnist.training.distributed import SINGLE_PROCESS
from unsupervised_mnist.training.train import global_batch

TRAIN_IMAGES, FULL_SIZE = 3600, 54000  # the default split; train_speed's Fashion-MNIST (less the validation)


def host_step_seconds(step, repeats: int = 30) -> float:
    for _ in range(5):
        step()
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - started) / repeats


def model_phases(params) -> list[tuple[str, int, int, float, float]]:
    """(label, steps, batch, host seconds per step, FLOP per image) for each phase of each model."""
    from torch.utils.flop_counter import FlopCounterMode

    rows, device = [], torch.device("cpu")
    for name in params.models:
        section = params.model(name)
        model, _ = build(name, params)
        objective = spec(name).objective(model, params, section, device)
        epochs, batch = spec(name).objective.total_epochs(section), global_batch(section, params, SINGLE_PROCESS)
        images, rng = torch.rand(TRAIN_IMAGES, 1, 28, 28), torch.Generator().manual_seed(0)
        for first, last in ((1, section.epochs), (section.epochs + 1, epochs)):
            if last < first:
                continue
            objective.start_epoch(last, epochs, images)
            step = functools.partial(objective.train_step, images[:1], images[:1], rng, torch.arange(1))
            with FlopCounterMode(display=False) as counter:
                objective.train_step(images[:batch], images[:batch], rng, torch.arange(batch))
            steps = (last - first + 1) * math.ceil(TRAIN_IMAGES / batch)
            rows.append((f"{name} epochs {first}-{last}", steps, batch, host_step_seconds(step),
                         counter.get_total_flops() / batch))
    return rows


def evaluator_host_step(params) -> float:
    from unsupervised_mnist.models.classifier import Classifier, ClassifierObjective

    p = params.classifier
    model = Classifier(tuple(p.channels), p.dropout)
    objective = ClassifierObjective(model, torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long), p,
                                    torch.device("cpu"), "fp32")
    image = torch.rand(1, 1, 28, 28)
    return host_step_seconds(functools.partial(objective.train_step, image, image, None, torch.zeros(1).long()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflops", type=float, default=790.0, help="the GPU's dense bf16 rate (H200: about 790)")
    parser.add_argument("--startup", type=float, default=6.0, help="seconds a stage process takes to start there")
    args = parser.parse_args()
    params = parse_params(yaml.safe_load(open("params.yaml")) | {}, "params.yaml")
    torch.set_num_threads(1)
    total = 0.0
    print(f"{'phase':<22}{'steps':>7}{'batch':>6}{'host ms/step':>14}{'GPU s':>8}")
    phases = model_phases(params)
    for label, steps, batch, host, flop in phases:
        seconds = steps * max(host, batch * flop / (args.tflops * 1e12))
        total += seconds
        print(f"{label:<22}{steps:>7}{batch:>6}{1000 * host:>14.2f}{seconds:>8.1f}")
    classifier_steps = params.classifier.epochs * math.ceil(TRAIN_IMAGES / params.train.batch_size)
    total += classifier_steps * evaluator_host_step(params)
    stages = 12  # check, data, prepare, the trainings, classifier, the evaluations, baselines, report
    cpu_side = {"evaluation and baselines (UMAP, k-means on the CPU)": 45.0, "data stages": 5.0,
                "start-ups": stages * args.startup}
    # train_speed.py: 2 models x 3 rounds x (a DataLoader epoch: ToTensor of every image, about 60 us each on the
    # host, and its steps; two engine epochs), at batch 128, steps at the AE's host time.
    ae_host = phases[0][3]
    steps = math.ceil(FULL_SIZE / 128)
    speed = 2 * 3 * (FULL_SIZE * 60e-6 + 3 * steps * ae_host) + 2 * 3 * 20 * ae_host
    estimate = {"train_speed.py (full-size, 3 variants)": speed, "the pipeline's training": total, **cpu_side,
                "torchrun rerun of one model": total / len(params.models) + args.startup}
    print(json.dumps({k: round(v, 1) for k, v in estimate.items()}, indent=2))
    print(f"estimated bench/gpu.sh on the GPU: {sum(estimate.values()) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
