"""The CUDA paths, checked on the CPU: what CUDA's autocast refuses, native bf16, batch norm under DDP on GPUs,
torch.compile beside the GAN's moving average and its gradient penalty."""

import importlib.util
import sys

import pytest
import torch
import torch.nn.functional as F
from helpers import MODELS, REPO, parse
from torch import nn
from torch.overrides import TorchFunctionMode

from unsupervised_mnist.models.registry import build, spec

# What CUDA's autocast refuses outright ("unsafe to autocast"), where CPU autocast lets it through: a CPU run
# never shows it (torch's autocast documentation: binary_cross_entropy and nn.BCELoss, which calls it).
CUDA_AUTOCAST_BANNED = {F.binary_cross_entropy}


class RefuseWhatCudaAutocastRefuses(TorchFunctionMode):
    """Raise, as CUDA would, when a refused op runs inside an autocast region (on the CPU's autocast here)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in CUDA_AUTOCAST_BANNED and torch.is_autocast_enabled("cpu"):
            raise RuntimeError(f"{getattr(func, '__name__', func)} is unsafe to autocast (CUDA refuses it): "
                               "compute the loss in fp32 outside autocast, from logits")
        return func(*args, **(kwargs or {}))


def test_the_checker_catches_binary_cross_entropy_under_autocast():
    x = torch.rand(4, 3)
    with RefuseWhatCudaAutocastRefuses(), pytest.raises(RuntimeError, match="unsafe to autocast"), \
            torch.autocast("cpu", dtype=torch.bfloat16):
        F.binary_cross_entropy(torch.sigmoid(x), x)
    with RefuseWhatCudaAutocastRefuses():  # outside autocast, and the logits form inside it, are fine
        F.binary_cross_entropy(torch.sigmoid(x), x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            F.binary_cross_entropy_with_logits(x, x)


@pytest.mark.parametrize("name", MODELS)
def test_every_training_step_runs_under_bf16_autocast_as_cuda_would_allow(name):
    """Every phase of every model's step, under bf16 autocast (as on a GPU), calls nothing CUDA's autocast
    refuses."""
    params = parse({"train.precision": "bf16", "ae.dec.init": "kmeans"})
    section, device = params.model(name), torch.device("cpu")
    torch.manual_seed(0)
    model, _ = build(name, params)
    objective = spec(name).objective(model, params, section, device)
    images = torch.rand(64, 1, 28, 28)
    rng = torch.Generator().manual_seed(0)
    epochs = spec(name).objective.total_epochs(section)
    with RefuseWhatCudaAutocastRefuses():
        for epoch in sorted({section.epochs, epochs}):  # the last epoch of each phase
            objective.start_epoch(epoch, epochs, images)
            objective.train_step(images[:8], images[:8], rng, torch.arange(8))
            objective.val_losses(images[:8], images[:8], rng, torch.arange(8))


def test_the_speed_benchmarks_steps_run_as_cuda_would_allow():
    """bench/train_speed.py's engine variant of pytorch/examples' VAE: its loss outside autocast (it once
    computed binary_cross_entropy inside it, and `bench/gpu.sh` died in the warm-up on the GPU)."""
    loaded = importlib.util.spec_from_file_location("train_speed", REPO / "bench/train_speed.py")
    train_speed = importlib.util.module_from_spec(loaded)
    sys.modules["train_speed"] = train_speed
    loaded.loader.exec_module(train_speed)
    model = train_speed.ExamplesVAE()
    objective = train_speed.ExamplesVAEObjective(model, torch.device("cpu"), "bf16")
    with RefuseWhatCudaAutocastRefuses():
        objective.train_step(torch.rand(8, 1, 28, 28), None, torch.Generator().manual_seed(0), None)


def test_bf16_is_chosen_only_where_it_is_native(monkeypatch):
    """On a GPU that only emulates bf16 (T4, V100), `auto` must train in fp32."""
    from unsupervised_mnist import device

    calls = []

    def bf16_supported(including_emulation=True):
        calls.append(including_emulation)
        return including_emulation  # an emulating GPU: True only if emulation counts

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", bf16_supported)
    assert device.resolve_precision("auto", torch.device("cuda")) == "fp32" and calls == [False]


def test_batch_norm_is_synchronised_for_ddp_on_gpus_keeping_parameters_and_keys():
    from unsupervised_mnist.training.distributed import synchronised_batch_norm

    params = parse()
    torch.manual_seed(0)
    model, _ = build("gan", params)
    keys = model.generator.state_dict().keys()
    first = next(i for i, m in enumerate(model.generator) if isinstance(m, nn.BatchNorm2d))
    weight = model.generator[first].weight
    synced = synchronised_batch_norm(model.generator)
    norms = [m for m in synced.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, nn.SyncBatchNorm) for m in norms)
    assert synced.state_dict().keys() == keys and synced[first].weight is weight  # what the optimizer holds


def test_compile_leaves_no_part_eager(monkeypatch):
    """train.compile: every trained part and the GAN's moving average are compiled (a deep copy of a compiled
    module would run eagerly); nothing is compiled twice."""
    from unsupervised_mnist.training.train import compile_modules

    compiled = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, *a, **k: compiled.append(self))
    params = parse({"train.compile": True})
    model, _ = build("gan", params)
    objective = spec("gan").objective(model, params, params.gan, torch.device("cpu"))
    compile_modules(model, objective)
    assert len(compiled) == len({id(m) for m in compiled})  # once each
    for module in (model.generator, objective.parts["generator"], model.discriminator, model.encoder):
        assert any(module is m for m in compiled)
    assert model.generator is not objective.parts["generator"]  # the average and the live generator
