"""unsupervised-mnist: denoising AEs, VAEs and GANs on MNIST-family images, as a DVC + MLflow pipeline."""
