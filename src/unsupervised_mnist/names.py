"""The names of the trained models and the baselines: light enough for any stage to import."""

MODEL_NAMES = ("ae", "vae", "gan")
BASELINES = ("pca", "pixels")
REPRESENTATIONS = (*MODEL_NAMES, *BASELINES)
