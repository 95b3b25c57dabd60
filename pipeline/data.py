"""Stage `data`: materialise data.source as IDX files in data/raw/<source>/ plus checksums.json."""

from pathlib import Path

from unsupervised_mnist import stage
from unsupervised_mnist.config import Params
from unsupervised_mnist.data.sources import materialise


def main(params: Params) -> None:
    checksums = materialise(params.data, Path("data/raw") / params.data.source)
    print(f"data: {params.data.source} from {checksums['origin']}: {checksums['counts']}")


if __name__ == "__main__":
    stage.run(main)
