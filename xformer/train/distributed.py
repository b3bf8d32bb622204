"""Distributed set-up for the trainer: the same command runs alone or under `torchrun`.

torchrun (one machine or several, `--nnodes/--rdzv-*`) sets WORLD_SIZE, RANK and LOCAL_RANK; without them the
run is a single process. The backend follows the device: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import DeviceError, OptionError

__all__ = ["DistributedContext", "resolve_device", "setup_distributed"]


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_primary(self) -> bool:
        """Only the primary process writes files and prints progress."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.is_distributed:
            torch.distributed.barrier()

    def broadcast_flag(self, flag: bool) -> bool:
        """The primary's value of `flag` on every rank (e.g. 'stop now')."""
        if not self.is_distributed:
            return flag
        tensor = torch.tensor([int(flag)], device=self.device)
        torch.distributed.broadcast(tensor, src=0)
        return bool(tensor.item())

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        if not self.is_distributed:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def close(self) -> None:
        if self.is_distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' is CUDA when present, else the CPU; 'cuda' picks this process's GPU under torchrun."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: no CUDA device is available here; use --device cpu")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    if name != "cpu":
        raise OptionError(f"unknown --device {name!r}; use auto, cpu, cuda or cuda:N")
    return torch.device("cpu")


def setup_distributed(device: str = "auto") -> DistributedContext:
    """Read torchrun's environment and join the process group (env:// rendezvous) when there is more than one
    process; otherwise a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world_size > 1:
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        torch.distributed.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo",
                                             init_method="env://")
    return DistributedContext(rank, local_rank, world_size, resolved)
