"""Stage `prepare`: split, scale and corrupt -> data/prepared/*.npz, metrics/data.json, an example plot."""

from pathlib import Path

from unsupervised_mnist import stage
from unsupervised_mnist.config import Params
from unsupervised_mnist.data.dataset import PREPARED_DIR, load_split
from unsupervised_mnist.data.prepare import prepare
from unsupervised_mnist.data.sources import read_raw
from unsupervised_mnist.figures import first_of_each_class, save_rows
from unsupervised_mnist.io import write_json


def main(params: Params) -> None:
    splits = read_raw(Path("data/raw") / params.data.source)
    metrics = prepare(splits, params, PREPARED_DIR)
    write_json("metrics/data.json", metrics)
    test = load_split("test")
    first = first_of_each_class(test.labels)
    save_rows("plots/data/noisy_examples.png", [test.clean[first], test.noisy[first]])
    counts = {name: s["n"] for name, s in metrics["splits"].items()}
    print(f"prepare: {counts}, noisy test PSNR {metrics['test_noisy_psnr_db']:.2f} dB")


if __name__ == "__main__":
    stage.run(main)
