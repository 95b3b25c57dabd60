"""Where tensors live and how they are computed: device choice, determinism, bf16 autocast.

Imported by training and evaluation alike, so that neither has to import the other for it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from pathlib import Path

import torch

from unsupervised_mnist.errors import ParamsError

# CPU flags of bf16 matrix units that oneDNN uses under autocast (Linux names them in /proc/cpuinfo).
BF16_CPU_FLAGS = {"amx_bf16", "avx512_bf16"}


def select_device(choice: str) -> torch.device:
    """`train.device`: auto picks CUDA when present."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise ParamsError("params.yaml: train.device='cuda' but no CUDA device is available (use auto or cpu)")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def make_deterministic(device: torch.device, threads: int, *, training: bool = True) -> None:
    """Same inputs, same bytes. `training=False` (evaluation: forward passes only) skips torch's
    deterministic-algorithms switch on the CPU, where forward kernels are deterministic for a fixed thread
    count anyway and the switch costs each stage about a second (it imports torch's compiler config)."""
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cpu" and not training:
        return
    if device.type == "cuda":
        # cuBLAS needs a fixed workspace for reproducible matrix products; a few CUDA kernels have no
        # deterministic version, so there we warn instead of failing.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.use_deterministic_algorithms(True)


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no way to tell without private torch APIs, so fp32
        return frozenset()
    return frozenset(word for line in text.splitlines() if line.startswith("flags") for word in line.split())


def native_bf16(device: torch.device) -> bool:
    """bf16 matrix units: a CUDA GPU that has them (Ampere and later; a T4 or V100 only emulates bf16, slower
    than fp32), or a CPU with AMX / AVX512-BF16."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return bool(BF16_CPU_FLAGS & _cpu_flags())


def resolve_precision(precision: str, device: torch.device) -> str:
    """`train.precision`: auto is bf16 where the chip has bf16 units, fp32 otherwise."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast_for(device: torch.device, precision: str = "auto") -> Callable[[], contextlib.AbstractContextManager]:
    """bf16 autocast for the forward pass (no loss scaling needed, unlike fp16); losses stay in fp32."""
    if resolve_precision(precision, device) == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext
