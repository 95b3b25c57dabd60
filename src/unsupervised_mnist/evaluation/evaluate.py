"""Evaluate one representation (model or baseline) with one code path, by what it can do: reconstruction
(`decode`), clustering of its codes (`encode`, and any `second_codes`), sample quality (`sample`, else a
Gaussian fitted to its training codes when it decodes), likelihood bounds (`likelihood_bounds`). Metric keys
are the same for every representation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from unsupervised_mnist.config import Params
from unsupervised_mnist.data.dataset import Split
from unsupervised_mnist.evaluation import metrics as m
from unsupervised_mnist.evaluation.classifier import Classifier, features_and_probs
from unsupervised_mnist.evaluation.clustering import cluster, cluster_scores, kmeans_scores
from unsupervised_mnist.evaluation.sample_quality import real_rows, reference_count, sample_quality
from unsupervised_mnist.manifold import umap_embedding
from unsupervised_mnist.progress import Progress
from unsupervised_mnist.seeding import derive_seed, torch_generator

BATCH = 500


def device_of(rep) -> torch.device:
    return next(rep.parameters()).device if isinstance(rep, nn.Module) else torch.device("cpu")


@torch.no_grad()
def batched(fn, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.cat([fn(x[i:i + BATCH].to(device)).float().cpu() for i in range(0, len(x), BATCH)])


def reconstruction_metrics(rep, clean: torch.Tensor, noisy: torch.Tensor, device, split: str) -> dict[str, float]:
    out = {}
    for prefix, inputs in (("", noisy), ("clean_", clean)):
        recon = batched(lambda x: rep.decode(rep.encode(x)), inputs, device)
        out[f"{split}/{prefix}recon_mse"] = m.mse_per_image(recon, clean).mean()
        out[f"{split}/{prefix}psnr_db"] = m.psnr_db(recon, clean).mean()
        out[f"{split}/{prefix}ssim"] = m.ssim_per_image(recon, clean).mean()
        if not prefix:
            out[f"{split}/recon_bce"] = m.bce_per_image(recon, clean).mean()
    if split == "val":  # the training run's live `val/recon_mse` already is this number: one name, one history
        del out["val/recon_mse"]
    return {k: float(v) for k, v in out.items()}


def clustering_metrics(codes: dict[str, np.ndarray], labels: dict[str, np.ndarray], params: Params,
                       key: str = "", manifold: bool = True) -> dict[str, float]:
    """Plain k-means on the codes of each labelled split -> `<split>/<key>kmeans_*`. With evaluate.manifold:
    umap, the N2D step: one UMAP embedding of all the codes given (the training split's included: more
    points make a better manifold, and no label is read), one clustering of it (evaluate.manifold_clusterer),
    scored on each labelled split -> `<split>/<key>manifold_*`."""
    e, seed = params.evaluate, derive_seed(params.seed, "kmeans")
    k = len(np.unique(np.concatenate(list(labels.values()))))
    out = {}
    for split, split_labels in labels.items():
        scores = kmeans_scores(codes[split], split_labels, k, e.kmeans_inits, seed)
        out |= {f"{split}/{key}kmeans_{name}": v for name, v in scores.items()}
    if manifold and e.manifold == "umap":
        names = list(codes)
        embedded = umap_embedding(np.concatenate([codes[n] for n in names]), e.umap_components, e.umap_neighbors,
                                  e.umap_epochs, seed)
        clusters = cluster(embedded, k, e.manifold_clusterer, e.kmeans_inits, seed)
        ends = np.cumsum([len(codes[n]) for n in names])
        by_split = dict(zip(names, np.split(clusters, ends[:-1])))
        for split, split_labels in labels.items():
            scores = cluster_scores(split_labels, by_split[split])
            out |= {f"{split}/{key}manifold_{name}": v for name, v in scores.items()}
    return out


@torch.no_grad()
def draw_samples(name: str, rep, n: int, train_codes: torch.Tensor, seed: int, device) -> torch.Tensor | None:
    """Generators sample their prior; a representation that only decodes (the AE, PCA) samples a Gaussian fitted
    to its training codes (latent-space generation without a prior); one that does not decode, nothing."""
    generator = torch_generator(seed, "samples", name, device=device)
    if hasattr(rep, "sample"):
        return rep.sample(n, generator).float().cpu()
    if not hasattr(rep, "decode"):
        return None
    codes = train_codes.double()
    mean, cov = codes.mean(0), torch.cov(codes.T) + 1e-6 * torch.eye(codes.shape[1], dtype=torch.float64)
    gaussian = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
    cpu_generator = torch_generator(seed, "samples", name)
    z = mean + torch.randn((n, codes.shape[1]), generator=cpu_generator, dtype=torch.float64) @ gaussian.scale_tril.T
    return batched(rep.decode, z.float(), device)


def code_metrics(rep, params: Params, splits: dict[str, Split], device) -> tuple[dict[str, float], dict]:
    """k-means (and the manifold step) on the codes of every labelled split, and plain k-means on each second code
    the representation has (the GAN's discriminator features, the AE's DEC clustering code), on the splits it
    names. Returns the metrics and the codes."""
    codes = {split_name: batched(rep.encode, split.clean, device).numpy() for split_name, split in splits.items()}
    labels = {split_name: split.labels.numpy() for split_name, split in splits.items() if split_name != "train"}
    metrics = clustering_metrics(codes, labels, params)
    second = rep.second_codes() if hasattr(rep, "second_codes") else {}
    for prefix, (encode, wanted) in second.items():  # what a second code is for is k-means, not UMAP
        scored = [s for s in wanted if s in labels]
        if scored:
            extra = {s: batched(encode, splits[s].clean, device).numpy() for s in scored}
            metrics |= clustering_metrics(extra, {s: labels[s] for s in scored}, params, prefix, manifold=False)
    return metrics, codes


def sample_metrics(samples: torch.Tensor, n: int, scored: dict[str, Split], classifier: Classifier,
                   seed: int) -> dict[str, float]:
    """FID, KID, classifier score and class shares of `samples` against as many random real images of each split
    (the first `count` samples where a split has fewer images)."""
    device = next(classifier.parameters()).device
    feats, probs = features_and_probs(classifier, samples.to(device))
    metrics = {}
    for split_name, split in scored.items():
        count = min(n, len(split))
        rows = torch.from_numpy(real_rows(len(split), count, derive_seed(seed, "real", split_name)))
        real_feats, _ = features_and_probs(classifier, split.clean[rows].to(device))
        quality = sample_quality(feats[:count].numpy(), probs[:count].numpy(), real_feats.numpy())
        metrics |= {f"{split_name}/{k}": v for k, v in quality.items()}
    return metrics


def likelihood_metrics(rep, params: Params, scored: dict[str, Split], device) -> dict[str, float]:
    """-ELBO and the -IWAE bound per split, in nats per image, on the inputs the model was trained on."""
    metrics = {}
    for split_name, split in scored.items():
        generator = torch_generator(params.seed, "iwae", split_name, device=device)
        inputs = split.noisy if rep.denoising else split.clean
        bounds = [rep.likelihood_bounds(inputs[i:i + 100].to(device), split.clean[i:i + 100].to(device),
                                        params.evaluate.iwae_k, generator) for i in range(0, len(split), 100)]
        metrics[f"{split_name}/neg_elbo"] = float(torch.cat([b[0] for b in bounds]).mean())
        metrics[f"{split_name}/iwae_nll"] = float(torch.cat([b[1] for b in bounds]).mean())
    return metrics


def evaluate(name: str, rep, params: Params, train: Split, val: Split, test: Split | None,
             classifier: Classifier) -> tuple[dict[str, float], dict]:
    """Metrics (flat `val/...` and `test/...` keys) and what the figures need. Every setting is chosen
    on the `val/` numbers; `test=None` (bench/ablation.py) computes them without reading the test split."""
    device = device_of(rep)
    scored = {"val": val} | ({"test": test} if test is not None else {})
    bounded = hasattr(rep, "likelihood_bounds")
    progress = Progress(f"evaluate {name}", 4 if bounded else 3)
    metrics: dict[str, float] = {f"{s}/noisy_input_psnr_db": float(m.psnr_db(split.noisy, split.clean).mean())
                                 for s, split in scored.items()}
    if hasattr(rep, "decode"):
        for split_name, split in scored.items():
            metrics |= reconstruction_metrics(rep, split.clean, split.noisy, device, split_name)
    progress.step("reconstruction of " + " and ".join(f"{len(split)} {s}" for s, split in scored.items()) + " images")
    clustered, codes = code_metrics(rep, params, {"train": train, **scored}, device)
    metrics |= clustered
    progress.step("k-means on the codes" + (" and a UMAP embedding" if params.evaluate.manifold == "umap" else ""))
    # The count of the test comparison and of the classifier stage's real-vs-real reference; the validation
    # split may be smaller: there, as many samples as it has images.
    n = reference_count(params.evaluate.n_samples, len(train), len(list(scored.values())[-1]))
    samples = draw_samples(name, rep, n, torch.from_numpy(codes["train"]), params.seed, device)
    if samples is not None:
        metrics |= sample_metrics(samples, n, scored, classifier, params.seed)
    progress.step(f"sample quality of {n} samples" if samples is not None else "no samples (no generator)")
    if bounded:
        metrics |= likelihood_metrics(rep, params, scored, device)
        progress.step(f"ELBO and IWAE bound (K={params.evaluate.iwae_k})")
    metrics = {k: round(v, 6) for k, v in sorted(metrics.items())}
    embedded, how = picture_embedding(codes[list(scored)[-1]], params)
    return metrics, {"embedded": embedded, "how": how, "samples": samples}


def picture_embedding(codes: np.ndarray, params: Params) -> tuple[np.ndarray, str]:
    """The test codes in two dimensions for the latent-space picture, and how they were made: UMAP, as the
    manifold step sees them, or their first two principal components when evaluate.manifold is none."""
    e = params.evaluate
    if e.manifold == "umap":
        seed = derive_seed(params.seed, "picture")
        return umap_embedding(codes, 2, e.umap_neighbors, e.umap_epochs, seed), "2-D UMAP"
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=0).fit_transform(codes), "first two principal components"


def evaluated_paths(name: str) -> tuple[Path, Path, Path]:
    """What dvc.yaml declares for evaluate@<name>: the compared metrics, the full results, the figures."""
    return Path(f"metrics/eval/{name}.json"), Path(f"reports/eval/{name}.json"), Path(f"plots/eval/{name}")
