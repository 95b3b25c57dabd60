"""Training on tiny configs, in-process: the models learn, runs are reproducible to the byte, faults are
caught, kills resume where they stopped."""

import shutil

import pytest
import torch
from helpers import MODELS, params_with, parse, run_stage, write_params

from unsupervised_mnist.errors import ParamsError, TrainingError
from unsupervised_mnist.models.checkpoint import load_checkpoint
from unsupervised_mnist.models.registry import parse_params, spec
from unsupervised_mnist.training.train import Outputs, train_model

# The default recipes, shorter: every phase of them (the AE's clustering code, the GAN's encoder epochs) runs.
FAST = {"ae.epochs": 2, "ae.dec.epochs": 1, "vae.epochs": 2, "gan.epochs": 2, "gan.encoder_epochs": 1}


@pytest.fixture(scope="module")
def prepared(tiny_prepared):
    """Prepared tiny data (1,000 mnist5k images), made once by the real stages (conftest.py)."""
    return tiny_prepared / "data/prepared"


@pytest.fixture(scope="module")
def few(prepared, tmp_path_factory):
    """Every fourth image of the tiny splits (180 train, 20 val): for the claims that hold at any size
    (same bytes, resumes, stops on NaN), a quarter of the work."""
    from unsupervised_mnist.io import load_npz, save_npz

    folder = tmp_path_factory.mktemp("few")
    for split in ("train", "val", "test"):
        arrays = load_npz(prepared / f"{split}.npz")
        save_npz(folder / f"{split}.npz", **{key: value[::4] for key, value in arrays.items()})
    return folder


def train(name, prepared, tmp_path, overrides=None, on_epoch=None):
    params = parse({"data.subset_fraction": 0.2, **FAST, **(overrides or {})})
    outputs = Outputs.for_model(name, tmp_path)
    trained = train_model(name, params, prepared_dir=prepared, outputs=outputs,
                          checkpoint_dir=tmp_path / ".checkpoints", on_epoch=on_epoch)
    assert 0 < trained.timing["epochs_run"] <= len(trained.history) and trained.timing["train_s"] > 0  # resumed: fewer
    return trained.history, outputs


@pytest.fixture
def checkpoint_every_epoch(monkeypatch):
    """A resumable checkpoint after every epoch (the engine writes one every CHECKPOINT_EVERY_S otherwise)."""
    from unsupervised_mnist.training import engine

    monkeypatch.setattr(engine, "CHECKPOINT_EVERY_S", 0.0)


def state_dicts_equal(a, b):
    a, b = (torch.load(path, weights_only=True)["state_dict"] for path in (a, b))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# Long enough to have learnt something (about 90 steps), short enough for the suite (a second or two each).
LEARNT = {"train.batch_size": 32, "gan.batch_size": 32, **{f"{m}.epochs": 4 for m in MODELS}}


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory):
    """Every model of params.yaml's list, trained through every phase, once for this module."""
    root = tmp_path_factory.mktemp("trained")
    return {name: load_checkpoint(train(name, prepared, root / name, LEARNT)[1].model) for name in MODELS}


def test_ae_validation_mse_halves(prepared, tmp_path, checkpoint_every_epoch):
    history, outputs = train("ae", prepared, tmp_path, {"ae.epochs": 8, "train.batch_size": 32})
    assert history[-1]["val/recon_mse"] < 0.5 * history[0]["val/recon_mse"]
    assert outputs.model.is_file() and outputs.metrics.is_file() and outputs.curves.is_file()
    curves = outputs.curves.read_text().splitlines()  # long form: a row per epoch, split and loss
    assert curves[0] == "epoch,split,loss,value" and len(curves) == 1 + 9 * 4  # 8 + 1 DEC epochs, 4 losses each
    assert {tuple(line.split(",")[1:3]) for line in curves[1:]} == {("train", "loss"), ("train", "kl"),
                                                                    ("val", "loss"), ("val", "recon_mse")}
    assert not list((tmp_path / ".checkpoints").iterdir())  # written during training, removed once it finished


def test_vae_validation_loss_falls(prepared, tmp_path):
    history, _ = train("vae", prepared, tmp_path, {"vae.epochs": 4})
    losses = [row["val/loss"] for row in history]
    assert losses[-1] < losses[0]
    assert 80 < losses[-1] < 300  # negative ELBO per image, in nats: the range pytorch/examples reaches


@pytest.mark.parametrize("name", MODELS)
def test_trained_model_codes_and_reconstructs_what_it_is_given(trained, prepared, name):
    """The interface on a trained model and real images: a code of latent_dim numbers that depends on the image,
    a decoder that depends on the code, images in [0, 1], and a reconstruction that is neither the input given
    back nor one image for all (an identity or a constant would pass a shape check)."""
    from unsupervised_mnist.data.dataset import load_split

    model, x = trained[name], load_split("val", prepared).clean[:16]
    with torch.no_grad():
        z = model.encode(x)
        assert z.shape == (16, model.latent_dim) and z.std(0).min() > 1e-3  # every code unit varies over images
        recon = model.decode(z)
        assert recon.shape == x.shape and 0 <= recon.min() and recon.max() <= 1
        assert (recon - x).pow(2).mean() > 1e-4  # not the input handed back
        assert recon.std(0).mean() > 0.05  # not one image for every input
        moved = model.decode(z + torch.randn(z.shape, generator=torch.Generator().manual_seed(0)))
        assert (moved - recon).abs().mean() > 0.01  # the decoder reads its code


@pytest.mark.parametrize("name", [m for m in MODELS if hasattr(spec(m).network, "sample")])
def test_generators_sample_as_many_different_images_as_asked(trained, name):
    model = trained[name]
    with torch.no_grad():
        first = model.sample(64, torch.Generator().manual_seed(1))
        again = model.sample(64, torch.Generator().manual_seed(1))
        other = model.sample(64, torch.Generator().manual_seed(2))
    assert first.shape == (64, 1, 28, 28) and 0 <= first.min() and first.max() <= 1
    assert torch.equal(first, again)  # the same draws, the same images
    assert first.std(dim=0).mean() > 0.02 and (first - other).abs().mean() > 0.02  # the images follow the draws


@pytest.mark.parametrize("loss", ["ns", "hinge", "wgan-gp"])
def test_gan_learns_under_each_loss(prepared, tmp_path, loss):
    """Each adversarial loss trains: losses stay finite, the discriminator scores real images above the
    generator's, and the encoder (its own epoch, after the GAN) inverts the generator better than guessing 0."""
    from unsupervised_mnist.data.dataset import load_split

    history, outputs = train("gan", prepared, tmp_path, {"gan.loss": loss, "gan.epochs": 3})
    assert all(torch.isfinite(torch.tensor(v)) for row in history for v in row.values())
    model, real = load_checkpoint(outputs.model), load_split("val", prepared).clean
    z = torch.randn((len(real), model.latent_dim), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fake = model.decode(z)
        assert model.discriminator(real).mean() > model.discriminator(fake).mean()
        assert (model.encode(fake) - z).pow(2).mean() < z.pow(2).mean()


def test_a_gan_with_an_mlp_is_refused_in_one_line():
    """The GAN is convolutional only: asking for another architecture names the key and what is allowed."""
    params = params_with({})
    params["gan"]["arch"] = "mlp"
    with pytest.raises(ParamsError, match=r"^params.yaml: unknown key gan.arch \(allowed: loss, channels, "):
        parse_params(params)


@pytest.mark.parametrize("name", [m for m in MODELS if "arch" in spec(m).rules])
def test_stacked_mlp_variant_trains(prepared, tmp_path, name):
    """The stacked (MLP) variant of each model that has one: trains, codes, decodes."""
    history, outputs = train(name, prepared, tmp_path, {f"{name}.arch": "mlp", f"{name}.epochs": 2})
    model = load_checkpoint(outputs.model)
    assert isinstance(model.encoder[1], torch.nn.Linear)  # after the Flatten: a stacked MLP, not convolutions
    with torch.no_grad():
        assert model.decode(model.encode(torch.rand(3, 1, 28, 28))).shape == (3, 1, 28, 28)
    assert history[1]["train/loss"] < history[0]["train/loss"]  # its two epochs (a second phase may follow)


def test_nan_loss_stops_with_message_and_keeps_model(few, tmp_path):
    earlier = Outputs.for_model("vae", tmp_path).model
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"the earlier model")
    with pytest.raises(TrainingError, match=r"^vae: loss became NaN or Inf at epoch 1, step \d+ "):
        train("vae", few, tmp_path, {"vae.lr": 1.0, "vae.arch": "mlp"})
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
def test_resume_after_kill_matches_uninterrupted(few, tmp_path, name, killed_after, checkpoint_every_epoch):
    overrides = PHASES[name]
    _, whole = train(name, few, tmp_path / "whole", overrides)
    with pytest.raises(Killed):
        train(name, few, tmp_path / "split", overrides, on_epoch=kill_after(killed_after))
    assert not (tmp_path / "split/models").exists()
    epochs_seen = []
    history, resumed = train(name, few, tmp_path / "split", overrides,
                             on_epoch=lambda row: epochs_seen.append(row["epoch"]))
    assert epochs_seen == list(range(killed_after + 1, 5))  # the epochs before came from the checkpoint
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert state_dicts_equal(whole.model, resumed.model)
    assert whole.metrics.read_bytes() == resumed.metrics.read_bytes()


@pytest.mark.parametrize("name", ["ae", "gan"])
def test_second_phases_are_byte_identical_across_runs_and_leave_the_first_alone(few, tmp_path, name):
    """The AE's clustering code (k-means or UMAP start, then DEC) and the GAN's resampled batch-norm statistics
    and encoder epochs are drawn from the seed like everything else: same params, same bytes. The AE's
    clustering code leaves its denoiser exactly as it would be without it."""
    overrides = {**PHASES[name], "ae.dec.init": "umap"}
    _, first = train(name, few, tmp_path / "a", overrides)
    _, second = train(name, few, tmp_path / "b", overrides)
    assert state_dicts_equal(first.model, second.model)
    assert first.curves.read_bytes() == second.curves.read_bytes()
    a = torch.load(first.model, weights_only=True)["state_dict"]
    if "ae.dec.epochs" in overrides:  # the phases asked for a clustering code beside the denoiser
        assert not torch.equal(a["cluster_encoder.0.weight"], a["encoder.0.weight"])  # DEC moved the copy
        _, plain = train(name, few, tmp_path / "c", {**overrides, "ae.dec.epochs": 0})
        c = torch.load(plain.model, weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], c[k]) for k in c)  # the denoiser is the one trained without a clustering code
    else:
        assert all(torch.isfinite(t).all() for t in a.values())


def test_augmented_training_is_byte_identical_across_runs(few, tmp_path):
    """Shifts and rotations are drawn from the seed like everything else: same params, same bytes."""
    overrides = {"ae.augment": {"shift": 2.0, "rotate": 10.0}}
    _, first = train("ae", few, tmp_path / "a", overrides)
    _, second = train("ae", few, tmp_path / "b", overrides)
    _, plain = train("ae", few, tmp_path / "c", {"ae.augment": {"shift": 0.0, "rotate": 0.0}})
    assert first.metrics.read_bytes() == second.metrics.read_bytes()
    assert first.curves.read_bytes() == second.curves.read_bytes()
    assert state_dicts_equal(first.model, second.model)
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
