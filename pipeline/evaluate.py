"""Stage `evaluate@<name>`: python pipeline/evaluate.py {ae,vae,gan,pca,pixels}
-> metrics/eval/<name>.json and plots/eval/<name>/*.png."""

import json
import sys

import torch

from unsupervised_mnist import stage
from unsupervised_mnist.config import Params
from unsupervised_mnist.data.dataset import load_split
from unsupervised_mnist.device import make_deterministic, select_device
from unsupervised_mnist.errors import DataError, UserError
from unsupervised_mnist.evaluation.classifier import Classifier
from unsupervised_mnist.evaluation.evaluate import device_of, evaluate, evaluated_paths
from unsupervised_mnist.evaluation.figures import save_figures
from unsupervised_mnist.evaluation.representations import REPRESENTATIONS, load_representation
from unsupervised_mnist.io import write_json
from unsupervised_mnist.tracking.runs import log_evaluation


def load_classifier(device: torch.device) -> Classifier:
    try:
        state = torch.load("models/classifier.pt", map_location=device, weights_only=True)
    except FileNotFoundError:
        raise DataError("models/classifier.pt: not found (run `dvc repro classifier`)") from None
    model = Classifier().to(device)
    model.load_state_dict(state["state_dict"])
    return model.eval()


def main(params: Params) -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in REPRESENTATIONS:
        raise UserError(f"usage: python pipeline/evaluate.py {{{','.join(REPRESENTATIONS)}}}")
    name = sys.argv[1]
    device = select_device(params.train.device)
    make_deterministic(device, params.train.threads)
    train, val, test = load_split("train"), load_split("val"), load_split("test")
    rep = load_representation(name, train.clean, params.latent_dim, params.seed, device)
    metrics, extra = evaluate(name, rep, params, train, val, test, load_classifier(device))
    metrics_path, plots_dir = evaluated_paths(name)
    with torch.no_grad():
        save_figures(plots_dir, name, rep, test.clean.to(device_of(rep)), test.noisy.to(device_of(rep)), test.labels,
                     extra["codes"], extra["samples"])
    write_json(metrics_path, metrics)
    log_evaluation(params, name, metrics, sorted(plots_dir.glob("*.png")))
    print(f"evaluate {name}: " + json.dumps({k: v for k, v in metrics.items() if "class_share" not in k}))


if __name__ == "__main__":
    stage.run(main)
