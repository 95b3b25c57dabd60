"""Training: the engine (whole split on the device, one sync per epoch), objectives, torchrun support."""
