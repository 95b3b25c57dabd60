"""The baselines every model is compared with, behind the models' interface: PCA at the models' latent_dim
(the linear dimensionality reduction) and the raw pixels (clustering only). Light to import: the report stage
reads the names; torch and scikit-learn are imported where a baseline is made."""

from __future__ import annotations

import numpy as np


class PCARepresentation:
    """sklearn PCA fit on the clean training images at the models' latent_dim; decode = inverse, clipped."""

    def __init__(self, train_clean, latent_dim: int, seed: int):
        from sklearn.decomposition import PCA

        self.latent_dim = latent_dim
        self.pca = PCA(n_components=latent_dim, random_state=seed % 2**32).fit(train_clean.flatten(1).numpy())

    def encode(self, x):
        import torch

        return torch.from_numpy(self.pca.transform(x.flatten(1).cpu().numpy()).astype(np.float32))

    def decode(self, z):
        import torch

        images = self.pca.inverse_transform(z.cpu().numpy()).astype(np.float32)
        return torch.from_numpy(images).clamp(0, 1).view(-1, 1, 28, 28)


class PixelRepresentation:
    """The raw pixels as a 784-dimensional code: a clustering baseline only (it neither decodes nor generates)."""

    latent_dim = 28 * 28

    def encode(self, x):
        return x.flatten(1)


# name -> how to make it from (the clean training images, latent_dim, seed); the report's rows in this order
BASELINES = {
    "pca": PCARepresentation,
    "pixels": lambda train_clean, latent_dim, seed: PixelRepresentation(),
}
