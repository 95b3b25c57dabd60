"""Data parallelism through PyTorch's own `torchrun` (DistributedDataParallel).

torchrun starts one process per device and tells each its place in the environment (RANK,
WORLD_SIZE, LOCAL_RANK); without those variables this module is a no-op and training runs as one
process. See docs/scale-out.md. `torch.distributed` is imported only under torchrun: one process does
not pay for it (about half a second per stage).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files and logs to MLflow."""
        return self.rank == 0


SINGLE_PROCESS = World()


def world_from_env() -> World:
    env = os.environ
    return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def setup(world: World, device: torch.device) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on the CPU); on CUDA each process takes its own GPU."""
    if not world.distributed:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def teardown(world: World) -> None:
    if not world.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def synchronised_batch_norm(module: nn.Module) -> nn.Module:
    """`module` with its batch-norm layers computing each step's statistics over every rank's share of the batch
    (SyncBatchNorm), as one process would over the whole batch; the running statistics then agree on every rank.
    Layers are swapped in place, their parameters and buffers kept: optimizers and state_dict keys still hold."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


def wrap(module: nn.Module, world: World) -> nn.Module:
    """DistributedDataParallel around `module` under torchrun: it averages the gradients over the ranks during
    backward; on GPUs (NCCL) its batch norm is synchronised first. On the CPU (gloo) SyncBatchNorm does not run:
    each rank normalises by its own share of the batch (docs/scale-out.md). Outside torchrun: the module itself."""
    if not world.distributed:
        return module
    device = next(module.parameters()).device
    if device.type == "cuda":
        module = synchronised_batch_norm(module)
    return nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def mean_over_ranks(values: torch.Tensor, world: World) -> torch.Tensor:
    if world.distributed:
        import torch.distributed as dist

        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values = values / world.world_size
    return values


def max_over_ranks(value: torch.Tensor, world: World) -> torch.Tensor:
    if world.distributed:
        import torch.distributed as dist

        dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value


def torchrun_command(nproc_per_node: int, script: str, *args: str) -> list[str]:
    """`torchrun --standalone --nproc_per_node N script args`, with this interpreter."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}",
            script, *args]
