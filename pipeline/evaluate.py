"""Stages `evaluate@<model>` and `baselines`: python pipeline/evaluate.py NAME [NAME ...], each NAME a trained
model (models/NAME.pt) or a baseline (pca, pixels) -> per NAME: metrics/eval/NAME.json (the compared numbers),
reports/eval/NAME.json (all), plots/eval/NAME/*.png."""

import sys

import torch

from unsupervised_mnist import stage
from unsupervised_mnist.config import Params
from unsupervised_mnist.data.dataset import load_split
from unsupervised_mnist.device import make_deterministic, select_device
from unsupervised_mnist.errors import UserError
from unsupervised_mnist.evaluation.baselines import BASELINES
from unsupervised_mnist.evaluation.classifier import load_classifier
from unsupervised_mnist.evaluation.evaluate import device_of, evaluate, evaluated_paths
from unsupervised_mnist.evaluation.headline import compared, summary_line
from unsupervised_mnist.evaluation.representations import load_representation
from unsupervised_mnist.figures import save_representation_figures
from unsupervised_mnist.io import write_json
from unsupervised_mnist.models.registry import registered


def main(params: Params) -> None:
    names, known = sys.argv[1:], [*registered(), *BASELINES]
    if not names or any(name not in known for name in names):
        raise UserError(f"usage: python pipeline/evaluate.py NAME [NAME ...], NAME in {{{','.join(known)}}}")
    device = select_device(params.train.device)
    make_deterministic(device, params.train.threads, training=False)
    train, val, test = load_split("train"), load_split("val"), load_split("test")
    classifier = load_classifier(device)
    for name in names:  # several in one process (the baselines' stage): the start-up is paid once
        rep = load_representation(name, train.clean, params.latent_dim, params.seed, device)
        metrics, extra = evaluate(name, rep, params, train, val, test, classifier)
        metrics_path, results_path, plots_dir = evaluated_paths(name)
        rep_device = device_of(rep)
        with torch.no_grad():
            save_representation_figures(plots_dir, name, rep, test.clean.to(rep_device), test.noisy.to(rep_device),
                                        test.labels, extra["embedded"], extra["how"], extra["samples"])
        write_json(results_path, metrics)  # all of them: the report, and MLflow through the register stage
        write_json(metrics_path, compared(metrics))
        print(f"evaluate {name}: " + summary_line(metrics))


if __name__ == "__main__":
    stage.run(main)
