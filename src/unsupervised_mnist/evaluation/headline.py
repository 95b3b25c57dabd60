"""The metrics that matter, in one table: what `dvc metrics show` lists (metrics/eval/<name>.json), the columns
of reports/summary.*, and the evaluate stage's one-line summary all read it. Every other metric is in the
full results (reports/eval/<name>.json)."""

from __future__ import annotations

# key, column of the summary table (None: not a column), format in the stage's summary line (None: not shown),
# whether `dvc metrics` lists it. Higher is better unless the column says "(lower)".
HEADLINE = (
    ("test/noisy_input_psnr_db", None, None, True),
    ("test/psnr_db", "denoise PSNR dB", "PSNR {:.2f} dB", True),
    ("test/ssim", "denoise SSIM", "SSIM {:.3f}", True),
    ("test/recon_mse", "denoise MSE (lower)", None, False),
    ("test/clean_psnr_db", "clean PSNR dB", None, True),
    ("test/kmeans_acc", "k-means ACC", "k-means ACC {:.3f}", True),
    ("test/kmeans_nmi", "k-means NMI", "NMI {:.3f}", True),
    ("test/kmeans_ari", "k-means ARI", None, True),
    ("test/manifold_acc", "manifold ACC", "manifold ACC {:.3f}", True),
    ("test/manifold_nmi", "manifold NMI", None, True),
    ("test/dfeat_kmeans_acc", None, "D-features k-means ACC {:.3f}", True),
    ("test/dec_kmeans_acc", None, "DEC-code k-means ACC {:.3f}", True),
    ("test/fid", "FID (lower)", "FID {:.2f}", True),
    ("test/kid", "KID (lower)", None, True),
    ("test/classifier_score", "classifier score", "score {:.2f}", True),
    ("test/neg_elbo", "-ELBO nats (lower)", "-ELBO {:.1f}", True),
    ("test/iwae_nll", "-IWAE nats (lower)", "-IWAE {:.1f}", True),
    ("val/psnr_db", None, None, True),
    ("val/kmeans_acc", None, None, True),
    ("val/manifold_acc", None, None, True),
    ("val/dec_kmeans_acc", None, None, False),
    ("val/fid", None, None, True),
    ("val/iwae_nll", None, None, True),
)
# Second codes made for clustering (metric prefix -> what the summary calls them): each gets its own row.
CLUSTERING_CODES = {"dec_": "clustering code (DEC)"}
COMPARED = tuple(key for key, _, _, listed in HEADLINE if listed)
COLUMNS = {key: title for key, title, _, _ in HEADLINE if title}


def compared(metrics: dict[str, float]) -> dict[str, float]:
    """The subset `dvc metrics show` lists."""
    return {key: metrics[key] for key in COMPARED if key in metrics}


def summary_line(metrics: dict[str, float]) -> str:
    """The numbers a reader compares, in one short line."""
    return ", ".join(shown.format(metrics[key]) for key, _, shown, _ in HEADLINE if shown and key in metrics)
