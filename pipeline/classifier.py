"""Stage `classifier`: a small CNN on the clean training split -> models/classifier.pt, metrics/classifier.json
(test accuracy, and FID/KID/classifier score of real training images it did not learn vs real test images:
the reference, at the sample count every model's FID uses, so that it carries the same small-sample bias)."""

import torch

from unsupervised_mnist import stage
from unsupervised_mnist.config import Params
from unsupervised_mnist.data.dataset import load_split
from unsupervised_mnist.device import make_deterministic, select_device
from unsupervised_mnist.evaluation.classifier import accuracy, features_and_probs
from unsupervised_mnist.evaluation.evaluator import train_evaluator
from unsupervised_mnist.evaluation.sample_quality import real_rows, reference_count, sample_quality
from unsupervised_mnist.io import atomic_path, write_json
from unsupervised_mnist.seeding import derive_seed


def main(params: Params) -> None:
    device = select_device(params.train.device)
    make_deterministic(device, params.train.threads)
    train, val, test = load_split("train"), load_split("val"), load_split("test")
    n = reference_count(params.evaluate.n_samples, len(train), len(test))
    model, held_out = train_evaluator(train, val, params, n, device)
    feats, probs = features_and_probs(model, train.clean[held_out].to(device))
    # The same real test images as every model's FID (evaluation/evaluate.py draws them with this seed).
    test_rows = torch.from_numpy(real_rows(len(test), n, derive_seed(params.seed, "real", "test")))
    real, _ = features_and_probs(model, test.clean[test_rows].to(device))
    reference = sample_quality(feats.numpy(), probs.numpy(), real.numpy())
    metrics = {"val_accuracy": accuracy(model, val, device), "test_accuracy": accuracy(model, test, device),
               "reference_n": n,
               **{f"reference/{k}": v for k, v in reference.items() if not k.startswith("sample_class")}}
    with atomic_path("models/classifier.pt") as tmp:
        torch.save({"config": {"channels": list(params.classifier.channels), "dropout": params.classifier.dropout},
                    "state_dict": model.state_dict()}, tmp)
    write_json("metrics/classifier.json", {k: round(v, 6) for k, v in metrics.items()})
    print(f"classifier: accuracy {metrics['val_accuracy']:.4f} val, {metrics['test_accuracy']:.4f} test; "
          f"real train vs test FID {metrics['reference/fid']:.3f} (n={n})")


if __name__ == "__main__":
    stage.run(main)
