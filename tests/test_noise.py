import pytest
import torch

from unsupervised_mnist.data.noise import add_noise


@pytest.fixture
def images():
    # Mid-grey images: clipping at 0 and 1 is rare, so the residual std is the param.
    return torch.full((200, 1, 28, 28), 0.5)


@pytest.mark.parametrize("level", [0.1, 0.2])
def test_gaussian_residual_std_matches_level(images, level):
    noisy = add_noise(images, "gaussian", level, torch.Generator().manual_seed(0))
    residual = noisy - images
    assert residual.std().item() == pytest.approx(level, rel=0.02)
    assert residual.mean().item() == pytest.approx(0.0, abs=0.002)


def test_gaussian_is_clipped(images):
    noisy = add_noise(images, "gaussian", 1.0, torch.Generator().manual_seed(0))
    assert noisy.min().item() == 0.0 and noisy.max().item() == 1.0


@pytest.mark.parametrize("level", [0.05, 0.3])
def test_salt_pepper_fraction_and_even_odds(images, level):
    noisy = add_noise(images, "salt_pepper", level, torch.Generator().manual_seed(1))
    changed = noisy != images
    assert changed.float().mean().item() == pytest.approx(level, rel=0.02)
    assert set(noisy[changed].unique().tolist()) == {0.0, 1.0}
    assert (noisy[changed] == 1.0).float().mean().item() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("level", [0.1, 0.5])
def test_mask_fraction(images, level):
    noisy = add_noise(images, "mask", level, torch.Generator().manual_seed(2))
    assert (noisy == 0).float().mean().item() == pytest.approx(level, rel=0.02)
    assert torch.equal(noisy[noisy != 0], images[noisy != 0])


def test_same_generator_seed_same_noise(images):
    a = add_noise(images, "gaussian", 0.3, torch.Generator().manual_seed(5))
    b = add_noise(images, "gaussian", 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
