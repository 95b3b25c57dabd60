"""Stage `report`: every metric in one table -> reports/summary.csv and reports/summary.md."""

from unsupervised_mnist import stage
from unsupervised_mnist.config import Params
from unsupervised_mnist.evaluation.report import write_report


def main(params: Params) -> None:
    print(write_report().to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    stage.run(main)
