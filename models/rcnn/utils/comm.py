"""torch.distributed helpers; the collective backend comes from the device adapter."""

from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist

from rcnn import compat
from rcnn.device import DeviceAdapter


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def is_main_process() -> bool:
    return get_rank() == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def binds_card(adapter: DeviceAdapter) -> bool:
    """Whether the collective runs on the card itself (nccl, hccl, cncl): only those take
    init_process_group's device_id; gloo (or host staging) on a plug-in device refuses it."""
    return adapter.is_accelerator and adapter.name in compat.backends_by_device().get(
        adapter.dist_backend, []
    )


def init_distributed(adapter: DeviceAdapter, index: int, timeout_s: int = 1800) -> bool:
    """Join the process group torchrun set up (env://); a no-op for a single process."""
    if not launched_by_torchrun() or is_dist():
        return is_dist()
    adapter.set_device(index)
    device_id = adapter.torch_device(index) if binds_card(adapter) else None
    dist.init_process_group(
        backend=adapter.dist_backend,
        init_method="env://",
        timeout=datetime.timedelta(seconds=timeout_s),
        **compat.process_group_device(device_id),
    )
    return True


def barrier() -> None:
    if is_dist() and get_world_size() > 1:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group once a run has ended well: a barrier, so no peer is still in a
    collective, then destroy it while the interpreter is whole. Left to exit, gloo's worker
    threads can abort the process (SIGABRT) as it tears down. Not after a failure: a peer that
    died would leave the barrier waiting."""
    if is_dist():
        barrier()
        dist.destroy_process_group()


def all_gather_objects(obj: Any) -> list[Any]:
    if not is_dist() or get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_objects(obj: Any) -> list[Any] | None:
    """Every rank's `obj` on rank 0 (None elsewhere): only rank 0 holds all of them."""
    if not is_dist() or get_world_size() == 1:
        return [obj]
    out: list[Any] | None = [None] * get_world_size() if is_main_process() else None
    dist.gather_object(obj, out, dst=0)
    return out


def reduce_loss_dict(losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Average each loss over ranks, for logging only (gradients are reduced by DDP)."""
    if not is_dist() or get_world_size() == 1:
        return losses
    names = sorted(losses)
    stacked = torch.stack([losses[k].detach() for k in names])
    dist.all_reduce(stacked)
    stacked /= get_world_size()
    return dict(zip(names, stacked, strict=True))
