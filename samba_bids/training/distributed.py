"""torch.distributed helpers: the process group, data-parallel models, means over processes.

Without a process group (no ``torchrun``) every helper is the identity: one process, rank 0.
"""

from __future__ import annotations

import os

import torch


def init_distributed():
    """Join the torch.distributed process group that ``torchrun`` describes, if any.

    ``torchrun --nproc-per-node G samba-bids ... group --group-model`` (or several nodes with
    ``--nnodes``) sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the rendezvous; each
    process then uses GPU ``LOCAL_RANK`` with the NCCL backend, or the CPU with gloo.

    Returns
    -------
    world : int
        Processes in the group (1 without torchrun).
    rank : int
    """
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return distributed_world()


def distributed_world() -> tuple[int, int]:
    """(world size, rank) of the torch.distributed process group; (1, 0) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _data_parallel(model, device):
    """``model`` wrapped in DistributedDataParallel inside a process group, else itself.

    Under ``torchrun`` (or any initialised process group: NCCL on GPUs, gloo on CPUs) each
    process trains on its share of every batch and DDP averages the gradients, so the
    replicas stay identical; one process per GPU, on one node or several.
    """
    world, _ = distributed_world()
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)


def _mean_over_processes(value: float, world: int) -> float:
    """Mean of a float over the processes of the group (itself without one)."""
    if world == 1:
        return value
    import torch.distributed as dist

    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor[0]) / world
