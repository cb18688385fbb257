"""Several processes training one run (DDP, started by `torchrun` or `accelerate launch`).

Every rank derives the same batch list from (seed, epoch), takes a disjoint share of it, and records
what its own steps saw. At each epoch end the ranks all-gather their records, so every rank holds
the whole epoch with each example recorded once; only rank 0 writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

# Launchers set these: torchrun / accelerate (RANK ...), MPI (OMPI_*, PMI_*).
_RANK = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
_WORLD = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
_LOCAL = ("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")


@dataclass(frozen=True)
class World:
    """This process's place among the processes training together; World() is a single process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def _env_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        if os.environ.get(name, "").strip():
            return int(os.environ[name])
    return default


def current_world() -> World:
    """The running process group's world, or the one a launcher announced in the environment."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return World(torch.distributed.get_rank(), torch.distributed.get_world_size(), _env_int(_LOCAL, 0))
    return World(_env_int(_RANK, 0), _env_int(_WORLD, 1), _env_int(_LOCAL, 0))


def init_from_env() -> tuple[World, bool]:
    """Join the process group a launcher set up (gloo on CPU, nccl on GPU). Returns the world and
    whether this call created the group (then the caller destroys it when done)."""
    world = current_world()
    if not world.distributed or torch.distributed.is_initialized():
        return world, False
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29500")
    if torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank)
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend, rank=world.rank, world_size=world.size)
    return world, True


def device_for(world: World) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", world.local_rank if world.distributed else torch.cuda.current_device())
    return torch.device("cpu")


def barrier(world: World) -> None:
    if world.distributed:
        torch.distributed.barrier()


def all_gather(world: World, obj) -> list:
    """Every rank's `obj`, in rank order (a picklable object; small: ids and per-example floats)."""
    if not world.distributed:
        return [obj]
    out = [None] * world.size
    torch.distributed.all_gather_object(out, obj)
    return out


def all_sum(world: World, values: list[float]) -> list[float]:
    if not world.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    if torch.distributed.get_backend() == "nccl":
        t = t.cuda()
    torch.distributed.all_reduce(t)
    return t.cpu().tolist()


def shard_batches(batches: list[np.ndarray], grad_accum: int, world: World) -> list[tuple[np.ndarray, int, int, bool]]:
    """This rank's micro-steps of an epoch: (example indices, loss numerator, loss denominator, sync).

    Batch k goes to rank k % size. When the batch count does not divide by the world size, the
    short ranks get padding steps (a copy of batch 0 with numerator 0: they train on nothing and
    are not recorded) so every rank takes the same number of steps. A micro-step's loss is scaled
    by numerator / denominator: its share of the real examples of its optimizer step over all ranks,
    times the world size (DDP averages gradients over ranks). With one process this is the plain
    gradient accumulation of the single-process loop, to the bit.
    """
    n_local = -(-len(batches) // world.size)
    out = []
    for j in range(n_local):
        group_start = j - j % grad_accum
        group_end = min(group_start + grad_accum, n_local)
        group = batches[group_start * world.size : group_end * world.size]
        k = j * world.size + world.rank
        real = k < len(batches)
        idx = batches[k] if real else batches[0]
        numerator = len(idx) * world.size if real else 0
        sync = (j + 1) % grad_accum == 0 or j + 1 == n_local
        out.append((idx, numerator, sum(len(b) for b in group), sync))
    return out


def lost_a_rank(error: RuntimeError) -> bool:
    """Whether a collective failed because another rank is gone (killed, out of memory): NCCL raises
    torch.distributed.DistError, gloo a plain RuntimeError from its transport (its source path in the message)."""
    return isinstance(error, torch.distributed.DistError) or "/gloo/transport/" in str(error)
