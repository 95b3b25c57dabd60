"""Stage `report`: every metric in one table -> reports/summary.csv and reports/summary.md."""

from unsupervised_mnist import stage
from unsupervised_mnist.config import Params
from unsupervised_mnist.evaluation.baselines import BASELINES
from unsupervised_mnist.evaluation.report import write_report


def main(params: Params) -> None:
    e = params.evaluate
    manifold = (f"UMAP to {e.umap_components} dimensions with {e.umap_neighbors} neighbours ({e.umap_epochs} "
                f"epochs), then "
                f"{'a Gaussian mixture' if e.manifold_clusterer == 'gmm' else 'k-means'}"
                if e.manifold == "umap" else "off: evaluate.manifold is none")
    table = write_report([*params.models, *BASELINES], manifold=manifold)
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    stage.run(main)
