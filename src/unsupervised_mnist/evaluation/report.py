"""The summary: one row per representation, the noisy-input floor and the real-data reference."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unsupervised_mnist.evaluation.headline import CLUSTERING_CODES, COLUMNS
from unsupervised_mnist.io import read_json, write_bytes


def summary_table(names: list[str], metrics_dir: Path = Path("metrics"),
                  results_dir: Path = Path("reports/eval")) -> pd.DataFrame:
    """A row per representation in `names` (the models, then the baselines), one per second code made for
    clustering, the noisy-input floor and the real-vs-real reference."""
    rows = {}
    evaluated = {name: read_json(results_dir / f"{name}.json") for name in names}
    first = next(iter(evaluated.values()))
    rows["noisy input (floor)"] = {"test/psnr_db": first["test/noisy_input_psnr_db"]}
    rows |= evaluated
    for name, metrics in evaluated.items():
        for prefix, title in CLUSTERING_CODES.items():
            code = {key.replace(f"/{prefix}", "/"): value for key, value in metrics.items() if f"/{prefix}" in key}
            if code:
                rows[f"{name}: {title}"] = code
    classifier = read_json(metrics_dir / "classifier.json")
    rows["real train vs test (reference)"] = {
        "test/fid": classifier["reference/fid"], "test/kid": classifier["reference/kid"],
        "test/classifier_score": classifier["reference/classifier_score"],
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table = table[[key for key in COLUMNS if key in table.columns]].rename(columns=COLUMNS)
    table.index.name = "representation"
    return table


def write_report(names: list[str], out_dir: Path = Path("reports"), metrics_dir: Path = Path("metrics"),
                 manifold: str = "none") -> pd.DataFrame:
    """`manifold` describes the manifold step for the text (e.g. "UMAP to 5 dimensions, then a GMM")."""
    table = summary_table(names, metrics_dir)
    data = read_json(metrics_dir / "data.json")
    classifier = read_json(metrics_dir / "classifier.json")
    write_bytes(out_dir / "summary.csv", table.to_csv(float_format="%.4f").encode())
    splits = ", ".join(f"{name} {s['n']}" for name, s in data["splits"].items())
    figures = "\n".join(
        f"| {name} | " + " | ".join(
            f"![{fig}](../plots/eval/{name}/{fig}.png)" if (Path("plots/eval") / name / f"{fig}.png").exists() else ""
            for fig in ("recon", "samples", "latent_2d", "interpolation")) + " |"
        for name in names)
    markdown = f"""# Summary

Data: `{data['source']}` ({splits}); noise: {data['noise']['kind']} {data['noise']['level']}.
Denoising: reconstruction of the noisy test images against the clean ones. Clustering: k-means on the
codes of the clean test images (ACC after Hungarian matching); "manifold": the N2D step first, UMAP of
the codes, then a clusterer ({manifold}). Sample quality: in the feature space of
a CNN trained on the clean training split (test accuracy {classifier['test_accuracy']:.4f}),
{classifier['reference_n']} samples against as many real test images; the reference row compares real
training with real test images at the same count. PCA has the models' latent_dim; pixels are the
raw 784 dimensions. AE and PCA samples come from a Gaussian fitted to their training codes.

{table.map(lambda v: "–" if pd.isna(v) else f"{v:.4f}").to_markdown(stralign="right")}

| representation | reconstructions (clean / noisy / from noisy / from clean) | samples | latent space | interpolation |
|---|---|---|---|---|
{figures}
"""
    write_bytes(out_dir / "summary.md", markdown.encode())
    return table
