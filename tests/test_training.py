"""Training on tiny configs: the models learn, runs are reproducible, faults are caught, kills resume."""

import shutil

import pytest
import torch
from helpers import params_with, run_stage, write_params

from unsupervised_mnist.config import parse_params
from unsupervised_mnist.errors import TrainingError
from unsupervised_mnist.models import load_checkpoint
from unsupervised_mnist.names import MODEL_NAMES
from unsupervised_mnist.training.train import Outputs, train_model

# The default recipes, shorter: every phase of them (the AE's clustering code, the GAN's encoder epochs) runs.
FAST = {"ae.epochs": 2, "ae.dec.epochs": 1, "vae.epochs": 2, "gan.epochs": 2, "gan.encoder_epochs": 1,
        "train.threads": 2}


@pytest.fixture
def prepared(tiny_prepared):
    """Prepared tiny data (1,000 mnist5k images), made once by the real stages (conftest.py)."""
    return tiny_prepared / "data/prepared"


def train(name, prepared, tmp_path, overrides=None, on_epoch=None):
    params = parse_params(params_with({"data.subset_fraction": 0.2, **FAST, **(overrides or {})}))
    outputs = Outputs.for_model(name, tmp_path)
    trained = train_model(name, params, prepared_dir=prepared, outputs=outputs,
                          checkpoint_dir=tmp_path / ".checkpoints", on_epoch=on_epoch)
    assert 0 < trained.timing["epochs_run"] <= len(trained.history) and trained.timing["train_s"] > 0  # resumed: fewer
    return trained.history, outputs


def test_ae_validation_mse_halves(prepared, tmp_path):
    history, outputs = train("ae", prepared, tmp_path, {"ae.epochs": 8, "train.batch_size": 32})
    assert history[-1]["val/recon_mse"] < 0.5 * history[0]["val/recon_mse"]
    assert outputs.model.is_file() and outputs.metrics.is_file() and outputs.curves.is_file()
    assert outputs.curves.read_text().splitlines()[0] == "epoch,train_loss,train_kl,val_loss,val_recon_mse"
    assert not list((tmp_path / ".checkpoints").iterdir())  # removed once training finished


def test_vae_validation_loss_falls(prepared, tmp_path):
    history, _ = train("vae", prepared, tmp_path, {"vae.epochs": 4})
    losses = [row["val/loss"] for row in history]
    assert losses[-1] < losses[0]
    assert 80 < losses[-1] < 300  # negative ELBO per image, in nats: the range pytorch/examples reaches


@pytest.mark.parametrize("loss", ["ns", "hinge", "wgan-gp"])
def test_gan_stays_finite_and_samples_vary(prepared, tmp_path, loss):
    history, outputs = train("gan", prepared, tmp_path, {"gan.loss": loss, "gan.epochs": 3})
    for row in history:
        assert all(torch.isfinite(torch.tensor(v)) for v in row.values())
    model = load_checkpoint(outputs.model)
    with torch.no_grad():
        samples = model.sample(64, torch.Generator().manual_seed(0))
    # Not collapsed to one image: pixels differ across samples.
    assert samples.std(dim=0).mean().item() > 0.05


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_interface_shapes_and_ranges(prepared, tmp_path, name, arch):
    if name == "gan" and arch == "mlp":
        pytest.skip("the GAN is convolutional only")
    overrides = {f"{name}.epochs": 1} | ({} if name == "gan" else {f"{name}.arch": arch})
    _, outputs = train(name, prepared, tmp_path, overrides)
    model = load_checkpoint(outputs.model)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        z = model.encode(x)
        assert z.shape == (5, 10) and model.latent_dim == 10
        y = model.decode(z)
        assert y.shape == (5, 1, 28, 28) and 0 <= y.min() and y.max() <= 1
        if name != "ae":
            s = model.sample(3, torch.Generator().manual_seed(1))
            assert s.shape == (3, 1, 28, 28) and 0 <= s.min() and s.max() <= 1


def test_nan_loss_stops_with_message_and_keeps_model(prepared, tmp_path):
    earlier = Outputs.for_model("vae", tmp_path).model
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"the earlier model")
    with pytest.raises(TrainingError, match=r"^vae: loss became NaN or Inf at epoch 1, step \d+ "):
        train("vae", prepared, tmp_path, {"vae.lr": 1.0, "vae.arch": "mlp"})
    assert earlier.read_bytes() == b"the earlier model"


def test_nan_loss_in_the_stage_is_one_line(prepared, tmp_path):
    write_params(tmp_path, {**FAST, "vae.lr": 1.0, "vae.arch": "mlp"})
    shutil.copytree(prepared, tmp_path / "data/prepared")
    result = run_stage(tmp_path, "train", "vae", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: vae: loss became NaN or Inf at epoch 1, step ")
    assert not (tmp_path / "models/vae.pt").exists()


class Killed(Exception):
    """Stands for the process dying right after an epoch was checkpointed."""


def kill_after(epoch):
    def on_epoch(row):
        if row["epoch"] == epoch:
            raise Killed

    return on_epoch


# Two epochs of the model, then two of its second phase: the AE's clustering code (DEC), the GAN's encoder.
PHASES = {"ae": {"ae.epochs": 2, "ae.dec.epochs": 2}, "gan": {"gan.epochs": 2, "gan.encoder_epochs": 2}}


@pytest.mark.parametrize("killed_after", [2, 3])  # at the end of the first phase; inside the second
@pytest.mark.parametrize("name", ["ae", "gan"])
def test_resume_after_kill_matches_uninterrupted(prepared, tmp_path, name, killed_after):
    overrides = PHASES[name]
    _, whole = train(name, prepared, tmp_path / "whole", overrides)
    with pytest.raises(Killed):
        train(name, prepared, tmp_path / "split", overrides, on_epoch=kill_after(killed_after))
    assert not (tmp_path / "split/models").exists()
    epochs_seen = []
    history, resumed = train(name, prepared, tmp_path / "split", overrides,
                             on_epoch=lambda row: epochs_seen.append(row["epoch"]))
    assert epochs_seen == list(range(killed_after + 1, 5))  # the epochs before came from the checkpoint
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    a = torch.load(whole.model, weights_only=True)["state_dict"]
    b = torch.load(resumed.model, weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert whole.metrics.read_bytes() == resumed.metrics.read_bytes()


@pytest.mark.parametrize("name", ["ae", "gan"])
def test_second_phases_are_byte_identical_across_runs_and_leave_the_first_alone(prepared, tmp_path, name):
    """The AE's clustering code (k-means or UMAP start, then DEC) and the GAN's resampled batch-norm statistics
    and encoder epochs are drawn from the seed like everything else: same params, same bytes. The AE's
    clustering code leaves its denoiser exactly as it would be without it."""
    overrides = {**PHASES[name], "ae.dec.init": "umap"}
    _, first = train(name, prepared, tmp_path / "a", overrides)
    _, second = train(name, prepared, tmp_path / "b", overrides)
    a = torch.load(first.model, weights_only=True)["state_dict"]
    b = torch.load(second.model, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert first.curves.read_bytes() == second.curves.read_bytes()
    if name == "ae":
        assert not torch.equal(a["cluster_encoder.0.weight"], a["encoder.0.weight"])  # DEC moved the copy
        _, plain = train(name, prepared, tmp_path / "c", {**overrides, "ae.dec.epochs": 0})
        c = torch.load(plain.model, weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], c[k]) for k in c)  # the denoiser is the one trained without a clustering code
    else:
        gan = load_checkpoint(first.model)
        assert all(torch.isfinite(t).all() for t in gan.state_dict().values())


def test_augmented_training_is_byte_identical_across_runs(prepared, tmp_path):
    """Shifts and rotations are drawn from the seed like everything else: same params, same bytes."""
    overrides = {"ae.augment": {"shift": 2.0, "rotate": 10.0}}
    _, first = train("ae", prepared, tmp_path / "a", overrides)
    _, second = train("ae", prepared, tmp_path / "b", overrides)
    _, plain = train("ae", prepared, tmp_path / "c", {"ae.augment": {"shift": 0.0, "rotate": 0.0}})
    assert first.metrics.read_bytes() == second.metrics.read_bytes()
    assert first.curves.read_bytes() == second.curves.read_bytes()
    a = torch.load(first.model, weights_only=True)["state_dict"]
    b = torch.load(second.model, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert first.curves.read_bytes() != plain.curves.read_bytes()  # the augmentation did change training


def test_random_affine_moves_digits_by_the_asked_amount():
    from unsupervised_mnist.data.augment import random_affine

    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 12:16, 12:16] = 1.0
    images = image.repeat(256, 1, 1, 1)
    assert torch.equal(random_affine(images, 0.0, 0.0, torch.Generator().manual_seed(0)), images)
    moved = random_affine(images, 3.0, 0.0, torch.Generator().manual_seed(0))
    grid = torch.arange(28.0)
    centre_x = (moved.sum(2).squeeze(1) * grid).sum(1) / moved.sum((1, 2, 3))
    offset = centre_x - 13.5
    assert offset.abs().max() <= 3.0 + 1e-4 and offset.abs().max() > 2.5  # up to 3 px, and about that far
    assert moved.sum((1, 2, 3)).sub(16).abs().max() < 1e-3  # a shift inside the frame keeps the ink
    again = random_affine(images, 3.0, 15.0, torch.Generator().manual_seed(0))
    assert torch.equal(again, random_affine(images, 3.0, 15.0, torch.Generator().manual_seed(0)))


def test_learning_rate_schedule_warms_up_then_follows_the_cosine():
    from unsupervised_mnist.training.engine import FitSpec, lr_factor

    spec = FitSpec(name="ae", epochs=10, batch_size=8, seed=0, noise_kind="gaussian", noise_level=0.5,
                   schedule="cosine", warmup_epochs=2)
    assert lr_factor(spec, 0.0) == 0.0 and lr_factor(spec, 1.0) == pytest.approx(0.5)
    assert lr_factor(spec, 2.0) == pytest.approx(1.0)
    assert lr_factor(spec, 6.0) == pytest.approx(0.5)  # half way through the cosine
    assert lr_factor(spec, 10.0) == pytest.approx(0.0, abs=1e-12)
    constant = FitSpec(name="ae", epochs=10, batch_size=8, seed=0, noise_kind="gaussian", noise_level=0.5)
    assert {lr_factor(constant, p) for p in (0.0, 5.0, 9.9)} == {1.0}
    short = FitSpec(name="ae", epochs=2, batch_size=8, seed=0, noise_kind="gaussian", noise_level=0.5,
                    schedule="cosine", warmup_epochs=5)  # warm-up capped at epochs - 1: the run still trains
    assert lr_factor(short, 0.5) == pytest.approx(0.5) and lr_factor(short, 1.0) == pytest.approx(1.0)
