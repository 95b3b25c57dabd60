"""Train one model with params.yaml plus overrides and print its validation metrics: one ablation row.

Selection reads the validation split only: the test split is never loaded here (the evaluation runs
with the validation split in the test split's place, and only `val/` numbers are printed).

    python bench/ablation.py ae -S ae.epochs=30 -S ae.augment.shift=2 [--prepared data/prepared]

Prints one JSON line: the overrides, the training seconds, and the model's selection metrics.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
import yaml

from unsupervised_mnist.data.dataset import load_split
from unsupervised_mnist.device import make_deterministic, select_device
from unsupervised_mnist.evaluation.baselines import BASELINES
from unsupervised_mnist.evaluation.classifier import Classifier, accuracy, build_classifier, features_and_probs
from unsupervised_mnist.evaluation.evaluate import evaluate
from unsupervised_mnist.evaluation.evaluator import train_evaluator
from unsupervised_mnist.evaluation.headline import HEADLINE
from unsupervised_mnist.evaluation.representations import load_representation
from unsupervised_mnist.evaluation.sample_quality import reference_count
from unsupervised_mnist.models.checkpoint import load_checkpoint
from unsupervised_mnist.models.registry import parse_params, registered
from unsupervised_mnist.overrides import set_overrides
from unsupervised_mnist.training.train import Outputs, train_model

# What a setting is chosen on: the headline numbers, on the validation split (those a representation has).
SELECTION = list(dict.fromkeys(key.replace("test/", "val/", 1) for key, *_ in HEADLINE))


def test_size(prepared: Path) -> int:
    """The test split's size from prepare's metrics (its images are never read here): it sets how many
    training images the classifier holds out for the reference, as in the pipeline."""
    data = json.loads((prepared.parent.parent / "metrics/data.json").read_text())
    return data["splits"]["test"]["n"]


def evaluator(path: Path | None, train, val, params, n: int, device) -> Classifier:
    """The pipeline's evaluator for these params; with --classifier, trained once and kept in that file
    (ablations of one model then share it, as the pipeline's evaluate stages do)."""
    if path is not None and path.exists():
        state = torch.load(path, map_location=device, weights_only=True)
        model = build_classifier(params.classifier).to(device)
        model.load_state_dict(state)
        return model.eval()
    model, _ = train_evaluator(train, val, params, n, device)
    if path is not None:
        torch.save(model.state_dict(), path)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=[*registered(), *BASELINES, "classifier"])
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    parser.add_argument("--keep", type=Path, help="copy the trained model file here")
    parser.add_argument("--classifier", type=Path, help="reuse the evaluator saved in this file (saved there if new)")
    args = parser.parse_args()
    params = parse_params(set_overrides(yaml.safe_load(open(args.params)), args.set), "overrides")
    train, val = load_split("train", args.prepared), load_split("val", args.prepared)
    device = select_device(params.train.device)
    n = reference_count(params.evaluate.n_samples, len(train), test_size(args.prepared))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        history = [{}]
        if args.model in registered():
            trained = train_model(args.model, params, prepared_dir=args.prepared,
                                  outputs=Outputs.for_model(args.model, root), checkpoint_dir=root / "checkpoints")
            history = trained.history
        train_s = time.perf_counter() - started
        make_deterministic(device, params.train.threads, training=args.model == "classifier")
        classifier = evaluator(args.classifier, train, val, params, n, device)
        if args.model == "classifier":
            _, probs = features_and_probs(classifier, val.clean.to(device))
            nll = float(torch.nn.functional.nll_loss(probs.clamp_min(1e-12).log(), val.labels))
            row = {"model": "classifier", "set": args.set, "train_s": round(time.perf_counter() - started, 1),
                   "val_accuracy": accuracy(classifier, val, device), "val_nll": round(nll, 4)}
            print(json.dumps(row), flush=True)
            return
        make_deterministic(device, params.train.threads, training=False)
        model_file = root / "models" / f"{args.model}.pt"
        if args.keep and model_file.exists():
            args.keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model_file, args.keep)
        rep = (load_checkpoint(model_file, device) if model_file.exists()
               else load_representation(args.model, train.clean, params.latent_dim, params.seed, device))
        metrics, _ = evaluate(args.model, rep, params, train, val, None, classifier)  # no test split
    losses = {k: v for k, v in history[-1].items() if k in ("train/loss", "val/loss")}  # over/underfitting
    shares = [v for k, v in metrics.items() if k.startswith("val/sample_class_share/")]
    row = {"model": args.model, "set": args.set, "train_s": round(train_s, 1), **losses,
           **{k: round(metrics[k], 4) for k in SELECTION if k in metrics},
           **({"val/class_share_range": [round(min(shares), 3), round(max(shares), 3)]} if shares else {})}
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
