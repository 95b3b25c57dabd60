"""Deep Embedded Clustering (Xie et al., 2016): a clustering code refined towards cluster centres.

The AE's second phase (models/ae.py) trains a copy of its encoder and k centres on KL(P || Q) between the
codes' soft assignments Q to the centres and their sharpened targets P, which pulls each image's code towards
its cluster. Where it starts matters most: from the centres of k-means on the codes (DEC's own start), or from
the clusters k-means finds in a UMAP embedding of the codes (N2D's partition, McConville et al., 2019), which on
these codes is right far more often."""

from __future__ import annotations

import torch
from torch import nn

from unsupervised_mnist.config import Section

KMEANS_RESTARTS = 10  # of the k-means that places the first centres


def soft_assignments(codes: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """q_ij: Student's t kernel (one degree of freedom) between code i and centre j, normalised over j (eq. 1)."""
    kernel = 1.0 / (1.0 + torch.cdist(codes, centres).pow(2))
    return kernel / kernel.sum(1, keepdim=True)


def sharpened_targets(q: torch.Tensor) -> torch.Tensor:
    """p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j'), f_j = sum_i q_ij: confident assignments weigh more and
    large clusters less (eq. 3)."""
    weight = q.pow(2) / q.sum(0)
    return weight / weight.sum(1, keepdim=True)


def kl_to_targets(q: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) per image, averaged: DEC's loss."""
    return nn.functional.kl_div(q.clamp_min(1e-12).log(), targets, reduction="batchmean")


class ClusteringCode(nn.Module):
    """What DEC trains: a clustering encoder and its centres; the pass gives the soft assignments and the codes."""

    def __init__(self, encoder: nn.Module, centres: nn.Parameter):
        super().__init__()
        self.encoder, self.centres = encoder, centres

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = self.encoder(x)
        return soft_assignments(codes.float(), self.centres.float()), codes


def initial_centres(codes: torch.Tensor, dec: Section, seed: int, umap: Section) -> torch.Tensor:
    """The mean code of each of the dec.clusters clusters that k-means finds in the codes (dec.init `kmeans`)
    or in their UMAP embedding (`umap`, with the evaluation's settings: evaluate.umap_*)."""
    from sklearn.cluster import KMeans

    points, k = codes.double().cpu().numpy(), dec.clusters
    if dec.init == "umap":
        from unsupervised_mnist.manifold import umap_embedding

        points = umap_embedding(points, umap.umap_components, umap.umap_neighbors, umap.umap_epochs, seed,
                                instead=f"{dec.key('init')}: kmeans")
    labels = KMeans(n_clusters=k, n_init=KMEANS_RESTARTS, random_state=seed % 2**32).fit_predict(points)
    return torch.stack([codes[torch.from_numpy(labels == j).to(codes.device)].mean(0) for j in range(k)])
