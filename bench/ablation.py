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

import yaml

from unsupervised_mnist.config import parse_params, set_overrides
from unsupervised_mnist.data.dataset import load_split
from unsupervised_mnist.device import make_deterministic, select_device
from unsupervised_mnist.evaluation.classifier import train_classifier
from unsupervised_mnist.evaluation.evaluate import evaluate
from unsupervised_mnist.evaluation.representations import load_representation
from unsupervised_mnist.evaluation.sample_quality import reference_count, reference_holdout
from unsupervised_mnist.models import load_checkpoint
from unsupervised_mnist.seeding import derive_seed
from unsupervised_mnist.training.train import Outputs, train_model

SELECTION = {  # what each model is chosen on (validation split)
    "ae": ("val/psnr_db", "val/kmeans_acc", "val/manifold_acc"),
    "vae": ("val/iwae_nll", "val/neg_elbo", "val/kmeans_acc", "val/manifold_acc"),
    "gan": ("val/fid", "val/classifier_score", "val/kmeans_acc", "val/manifold_acc"),
    "pca": ("val/psnr_db", "val/kmeans_acc", "val/manifold_acc"),
    "pixels": ("val/kmeans_acc", "val/manifold_acc"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=SELECTION)
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    parser.add_argument("--keep", type=Path, help="copy the trained model file here")
    args = parser.parse_args()
    params = parse_params(set_overrides(yaml.safe_load(open(args.params)), args.set), "overrides")
    train, val = load_split("train", args.prepared), load_split("val", args.prepared)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        history = [{}]
        if args.model in ("ae", "vae", "gan"):
            trained = train_model(args.model, params, prepared_dir=args.prepared,
                                  outputs=Outputs.for_model(args.model, root), checkpoint_dir=root / "checkpoints")
            history = trained.history
        train_s = time.perf_counter() - started
        device = select_device(params.train.device)
        make_deterministic(device, params.train.threads, training=False)
        n = reference_count(params.evaluate.n_samples, len(train), len(val))
        learnt, _ = reference_holdout(len(train), n, derive_seed(params.seed, "reference"))
        classifier = train_classifier(train.subset(learnt), params.classifier.epochs, params.classifier.lr,
                                      params.train.batch_size, derive_seed(params.seed, "classifier"), device)
        model_file = root / "models" / f"{args.model}.pt"
        if args.keep and model_file.exists():
            args.keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model_file, args.keep)
        rep = (load_checkpoint(model_file, device) if model_file.exists()
               else load_representation(args.model, train.clean, params.latent_dim, params.seed, device))
        metrics, _ = evaluate(args.model, rep, params, train, val, None, classifier)  # no test split
    losses = {k: v for k, v in history[-1].items() if k in ("train/loss", "val/loss")}  # over/underfitting
    row = {"model": args.model, "set": args.set, "train_s": round(train_s, 1), **losses,
           **{k: round(metrics[k], 4) for k in SELECTION[args.model] if k in metrics}}
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
