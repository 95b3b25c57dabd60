"""Stage `train@<model>`: python pipeline/train.py {ae,vae,gan}."""

import sys

from unsupervised_mnist import stage
from unsupervised_mnist.config import Params
from unsupervised_mnist.errors import UserError
from unsupervised_mnist.models import MODEL_NAMES
from unsupervised_mnist.training.train import train_model


def main(params: Params) -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in MODEL_NAMES:
        raise UserError(f"usage: python pipeline/train.py {{{','.join(MODEL_NAMES)}}}")
    train_model(sys.argv[1], params)


if __name__ == "__main__":
    stage.run(main)
