"""torchrun integration: read the launcher's environment, set up the process group.

A plain ``python -m training train`` is a world of one. Under ``torchrun`` the backend is
``nccl`` on CUDA and ``gloo`` on CPU; only rank 0 writes files (master-only I/O).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes logs and checkpoints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when a process group with more than one member is running."""
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Read torchrun's variables and start the process group when launched by it.

    Args:
        device_type: ``"cuda"`` or ``"cpu"``: picks ``nccl`` or ``gloo``.

    Returns:
        This process's :class:`DistInfo`.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)),
                    int(os.environ["WORLD_SIZE"]))
    if info.world_size > 1 and not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return info


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ranks (a copy; unchanged without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values.clone()
    t = values.detach().clone()
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return (t / dist.get_world_size()).to(values.device)


def cleanup() -> None:
    """Destroy the process group if this process started one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
