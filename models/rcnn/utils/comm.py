"""torch.distributed helpers; the collective backend comes from the device adapter."""

from __future__ import annotations

import datetime
import os
import socket
import time
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


def torchrun_rank() -> int:
    """This process's global rank from torchrun's environment, known before any group exists."""
    return int(os.environ.get("RANK", "0"))


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
    _PEERS[:] = all_gather_objects(
        {"rank": get_rank(), "node": int(os.environ.get("GROUP_RANK", "0")), "hostname": _host()}
    )
    return True


_PEERS: list[dict] = []  # every rank's {rank, node, hostname}, gathered when the group forms


def _host() -> str:
    return socket.gethostname()


def peers() -> list[dict]:
    """Every rank's rank, node (torchrun's GROUP_RANK) and hostname; one entry alone."""
    return list(_PEERS) or [{"rank": 0, "node": 0, "hostname": _host()}]


def rendezvous_endpoint() -> str | None:
    """Where the ranks met (torchrun's MASTER_ADDR:MASTER_PORT)."""
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    return f"{addr}:{port}" if addr and port else None


# what a collective says when the process at the other end is gone (gloo, nccl and the
# vendor libraries that copy them); any other failure is the rank's own
_PEER_GONE = (
    "connection closed by peer",
    "connection reset by peer",
    "broken pipe",
    "connection refused",
    "communicator was aborted",
    "remote process exited",
)


def lost_peer(err: BaseException) -> str | None:
    """'rank R on HOST (node N) was lost: <the transport's line>' when `err` is a collective
    whose peer went away, naming the ranks of the other node when there is one other, else None."""
    said = [line.strip() for line in str(err).splitlines()]
    first = next((line for line in said if any(m in line.lower() for m in _PEER_GONE)), None)
    if len(_PEERS) < 2 or first is None:
        return None
    me = _PEERS[get_rank()] if is_dist() else _PEERS[0]
    others = [p for p in _PEERS if p["node"] != me["node"]]
    if len({p["node"] for p in others}) != 1:  # one node, or several: each rank is a suspect
        others = [p for p in _PEERS if p["rank"] != me["rank"]]
    who = ", ".join(f"rank {p['rank']} on {p['hostname']} (node {p['node']})" for p in others)
    return f"{who} {'was' if len(others) == 1 else 'one of them was'} lost: {first}"


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


COLLECTIVES = ("all_reduce", "all_gather")


def bus_bandwidth(op: str, nbytes: int, world: int, seconds: float) -> tuple[float, float]:
    """(algbw, busbw) in GB/s as nccl-tests computes them: algbw = bytes / time, busbw =
    algbw x 2(n-1)/n for all-reduce and algbw x (n-1)/n for all-gather (bytes: the whole
    gathered buffer)."""
    algbw = nbytes / seconds / 1e9
    factor = {"all_reduce": 2 * (world - 1) / world, "all_gather": (world - 1) / world}[op]
    return algbw, algbw * factor


def time_collective(
    op: str, nbytes: int, device: torch.device, sync: Any, iters: int, warmup: int = 1
) -> float:
    """Mean seconds of one `op` on a float32 buffer of `nbytes` (all-gather: the gathered
    buffer) over `iters` calls after `warmup`, `sync()` at the window's edges and a barrier
    before it, so every rank starts together."""
    world = get_world_size()
    count = max(1, nbytes // 4 // (world if op == "all_gather" else 1))
    buf = torch.ones(count, dtype=torch.float32, device=device)
    outs = [torch.empty_like(buf) for _ in range(world)] if op == "all_gather" else []

    def once() -> None:  # the list form of all-gather: gloo on torch 2.1 has no other
        if op == "all_reduce":
            dist.all_reduce(buf)
        else:
            dist.all_gather(outs, buf)

    for _ in range(warmup):
        once()
    sync()
    barrier()
    start = time.perf_counter()
    for _ in range(iters):
        once()
    sync()
    return (time.perf_counter() - start) / iters


DDP_BUCKET_BYTES = 25 * 2**20  # DistributedDataParallel's default bucket_cap_mb
LATENCY_BYTES = 4096


def collective_backend(adapter: DeviceAdapter) -> str:
    """The backend the group runs, 'host-staged' when a card's tensors go through the host."""
    backend = str(dist.get_backend()) if is_dist() else adapter.dist_backend
    staged = adapter.is_accelerator and not binds_card(adapter)
    return f"{backend} (host-staged)" if staged else backend


def collective_device(adapter: DeviceAdapter, index: int) -> torch.device:
    """Where a collective's buffers live: the card when the backend runs on it, else the host."""
    return adapter.torch_device(index) if binds_card(adapter) else torch.device("cpu")


def interconnect_probe(adapter: DeviceAdapter, index: int, iters: int = 5) -> dict | None:
    """A short all-reduce at DDP's bucket size (busbw) and at 4 KB (latency), for the record's
    `interconnect`; None for a single process."""
    if get_world_size() < 2:
        return None
    device = collective_device(adapter, index)

    def sync() -> None:
        adapter.synchronize(index)

    bucket = time_collective("all_reduce", DDP_BUCKET_BYTES, device, sync, iters)
    small = time_collective("all_reduce", LATENCY_BYTES, device, sync, iters * 4)
    return {
        "backend": collective_backend(adapter),
        "bytes": DDP_BUCKET_BYTES,
        "busbw_gb_s": bus_bandwidth("all_reduce", DDP_BUCKET_BYTES, get_world_size(), bucket)[1],
        "latency_us": small * 1e6,
    }
