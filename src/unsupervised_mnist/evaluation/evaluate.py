"""Evaluate one representation (model or baseline) with one code path: reconstruction, clustering,
sample quality, and the VAE's likelihood bounds. Metric keys are the same for every representation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from unsupervised_mnist.config import Params
from unsupervised_mnist.data.dataset import Split
from unsupervised_mnist.evaluation import metrics as m
from unsupervised_mnist.evaluation.classifier import Classifier, features_and_probs
from unsupervised_mnist.evaluation.clustering import kmeans_scores, umap_embedding
from unsupervised_mnist.evaluation.likelihood import vae_bounds
from unsupervised_mnist.evaluation.sample_quality import reference_count, sample_quality
from unsupervised_mnist.models.vae import VAE
from unsupervised_mnist.progress import Progress
from unsupervised_mnist.seeding import derive_seed, torch_generator

BATCH = 500


def device_of(rep) -> torch.device:
    return next(rep.parameters()).device if isinstance(rep, nn.Module) else torch.device("cpu")


@torch.no_grad()
def batched(fn, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.cat([fn(x[i:i + BATCH].to(device)).float().cpu() for i in range(0, len(x), BATCH)])


def reconstruction_metrics(rep, clean: torch.Tensor, noisy: torch.Tensor, device) -> dict[str, float]:
    out = {}
    for prefix, inputs in (("", noisy), ("clean_", clean)):
        recon = batched(lambda x: rep.decode(rep.encode(x)), inputs, device)
        out[f"test/{prefix}recon_mse"] = m.mse_per_image(recon, clean).mean()
        out[f"test/{prefix}psnr_db"] = m.psnr_db(recon, clean).mean()
        out[f"test/{prefix}ssim"] = m.ssim_per_image(recon, clean).mean()
        if not prefix:
            out["test/recon_bce"] = m.bce_per_image(recon, clean).mean()
    return {k: float(v) for k, v in out.items()}


def clustering_metrics(codes: np.ndarray, labels: np.ndarray, params: Params, prefix: str) -> dict[str, float]:
    e, seed = params.evaluate, derive_seed(params.seed, "kmeans")
    k = len(np.unique(labels))
    out = {f"test/{prefix}kmeans_{key}": v for key, v in kmeans_scores(codes, labels, k, e.kmeans_inits, seed).items()}
    if e.manifold == "umap":
        embedded = umap_embedding(codes, e.umap_components, e.umap_neighbors, seed)
        out |= {f"test/{prefix}umap_kmeans_{key}": v
                for key, v in kmeans_scores(embedded, labels, k, e.kmeans_inits, seed).items()}
    return out


@torch.no_grad()
def draw_samples(name: str, rep, n: int, train_codes: torch.Tensor, seed: int, device) -> torch.Tensor | None:
    """Generators sample their prior; the AE and PCA sample a Gaussian fitted to their training codes
    (latent-space generation without a prior); raw pixels do not generate."""
    generator = torch_generator(seed, "samples", name, device=device)
    if hasattr(rep, "sample"):
        return rep.sample(n, generator).float().cpu()
    if name == "pixels":
        return None
    codes = train_codes.double()
    mean, cov = codes.mean(0), torch.cov(codes.T) + 1e-6 * torch.eye(codes.shape[1], dtype=torch.float64)
    gaussian = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
    cpu_generator = torch_generator(seed, "samples", name)
    z = mean + torch.randn((n, codes.shape[1]), generator=cpu_generator, dtype=torch.float64) @ gaussian.scale_tril.T
    return batched(rep.decode, z.float(), device)


def evaluate(name: str, rep, params: Params, train: Split, val: Split, test: Split,
             classifier: Classifier) -> tuple[dict[str, float], dict]:
    """Metrics (flat, 'test/...' keys) and what the figures need."""
    device = device_of(rep)
    progress = Progress(f"evaluate {name}", 4 if isinstance(rep, VAE) else 3)
    metrics: dict[str, float] = {
        "test/noisy_input_psnr_db": float(m.psnr_db(test.noisy, test.clean).mean()),
    }
    if name != "pixels":
        metrics |= reconstruction_metrics(rep, test.clean, test.noisy, device)
    progress.step(f"reconstruction of {len(test)} test images")

    codes = batched(rep.encode, test.clean, device)
    labels = test.labels.numpy()
    metrics |= clustering_metrics(codes.numpy(), labels, params, "")
    if hasattr(rep, "features"):  # the GAN's discriminator features: a second code
        metrics |= clustering_metrics(batched(rep.features, test.clean, device).numpy(), labels, params, "dfeat_")
    progress.step("k-means on the codes" + (" and a UMAP embedding" if params.evaluate.manifold == "umap" else ""))

    n = reference_count(params.evaluate.n_samples, len(val), len(test))
    train_codes = batched(rep.encode, train.clean, device) if name in ("ae", "pca") else None
    samples = draw_samples(name, rep, n, train_codes, params.seed, device)
    if samples is not None:
        cls_device = next(classifier.parameters()).device
        feats, probs = features_and_probs(classifier, samples.to(cls_device))
        real_feats, _ = features_and_probs(classifier, test.clean[:n].to(cls_device))
        metrics |= {f"test/{k}": v for k, v in sample_quality(feats.numpy(), probs.numpy(), real_feats.numpy()).items()}
    progress.step(f"sample quality of {n} samples" if samples is not None else "no samples (no generator)")

    if isinstance(rep, VAE):
        generator = torch_generator(params.seed, "iwae", device=device)
        inputs = test.noisy if params.vae.denoising else test.clean
        bounds = [vae_bounds(rep, inputs[i:i + 100].to(device), test.clean[i:i + 100].to(device),
                             params.evaluate.iwae_k, generator) for i in range(0, len(test), 100)]
        metrics["test/neg_elbo"] = float(torch.cat([b[0] for b in bounds]).mean())
        metrics["test/iwae_nll"] = float(torch.cat([b[1] for b in bounds]).mean())
        progress.step(f"ELBO and IWAE bound (K={params.evaluate.iwae_k})")

    metrics = {k: round(v, 6) for k, v in sorted(metrics.items())}
    return metrics, {"codes": codes.numpy(), "samples": samples}


# The numbers a reader compares across representations and commits: `dvc metrics show` lists these
# (metrics/eval/<name>.json); every metric, class shares and per-term values included, is in the
# full results (reports/eval/<name>.json), which the report, MLflow and the registry read.
COMPARED = ("test/noisy_input_psnr_db", "test/psnr_db", "test/ssim", "test/clean_psnr_db", "test/kmeans_acc",
            "test/kmeans_nmi", "test/kmeans_ari", "test/umap_kmeans_acc", "test/umap_kmeans_nmi",
            "test/dfeat_kmeans_acc", "test/fid", "test/kid", "test/classifier_score", "test/neg_elbo",
            "test/iwae_nll")


def compared(metrics: dict[str, float]) -> dict[str, float]:
    return {key: metrics[key] for key in COMPARED if key in metrics}


def evaluated_paths(name: str) -> tuple[Path, Path, Path]:
    """What dvc.yaml declares for evaluate@<name>: the compared metrics, the full results, the figures."""
    return Path(f"metrics/eval/{name}.json"), Path(f"reports/eval/{name}.json"), Path(f"plots/eval/{name}")
