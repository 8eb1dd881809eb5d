"""`python -m benchmark comm`: collective bus bandwidth and latency across a run's cards/nodes.

All-reduce and all-gather of float32 buffers from 4 KB to 256 MB through the device adapter's
collective backend (nccl, cncl, hccl, gloo; host-staged where the backend cannot take the
card's memory), timed as nccl-tests does: algbw = bytes / time, busbw = algbw x 2(n-1)/n for
all-reduce and x (n-1)/n for all-gather. One record (mode comm, `collectives`), a report table.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import UsageError
from benchmark.launch import execute
from benchmark.workload.args import _cards
from rcnn.device import resolve
from rcnn.utils import comm

OPTIONS = ("sizes", "ops")
DEFAULT_SIZES = "4K,64K,1M,16M,256M"  # every 16x: the whole range, quick on a CPU
UNITS = {"K": 2**10, "M": 2**20, "G": 2**30}
SPAN_BYTES = 64 * 2**20  # iterations per size: about this many bytes moved, 2..20 calls


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("comm", help="all-reduce / all-gather bus bandwidth (one record)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mlu, npu, ...")
    p.add_argument("--cards", type=_cards, default=2, help="cards (processes) per node, or all")
    p.add_argument("--nodes", type=int, default=1, help="nodes of a multi-node run")
    p.add_argument("--node-rank", type=int, default=0)
    p.add_argument("--master-addr", default="127.0.0.1")
    p.add_argument("--master-port", type=int, default=29500)
    p.add_argument(
        "--sizes", default=DEFAULT_SIZES, help=f"message sizes (default {DEFAULT_SIZES})"
    )
    p.add_argument("--ops", default=",".join(comm.COLLECTIVES), help="collectives, comma-separated")
    p.add_argument("--iters", type=int, help="timed calls per size (default: by size, 2..20)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per size first")
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)  # float32 buffers
    p.add_argument(
        "--results",
        default=os.environ.get("RESULTS_DIR") or "results",
        help="results folder (default $RESULTS_DIR or results)",
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--run-id", help="the run's id: the same on every node of a multi-node run")
    p.set_defaults(func=run, model=None, batch=None, repeats=None, opts=[])


def parse_sizes(text: str) -> list[int]:
    """'4K,1M,256M' -> bytes; a multiple of 4 (float32), at least 4 bytes."""
    sizes = []
    for item in text.split(","):
        item = item.strip().upper().removesuffix("B")
        scale = UNITS.get(item[-1:], 1)
        number = item[:-1] if item[-1:] in UNITS else item
        if not number.isdigit() or int(number) * scale < 4 or int(number) * scale % 4:
            raise UsageError(f"--sizes: {item!r} is not a size like 4K, 1M, 256M (bytes, x4)")
        sizes.append(int(number) * scale)
    return sizes


@dataclass
class Collectives:
    """What a comm run measures: the verb's workload."""

    sizes: list[int]
    ops: list[str]
    cfg: None = None

    def record_fields(self) -> dict:
        return {}


def prepare(verb: str, args: argparse.Namespace, cards: int, run_dir: Path, extra) -> Collectives:
    ops = [op.strip() for op in args.ops.split(",")]
    unknown = [op for op in ops if op not in comm.COLLECTIVES]
    if unknown:
        raise UsageError(f"--ops {','.join(unknown)}: not one of {', '.join(comm.COLLECTIVES)}")
    if cards * args.nodes < 2:
        raise UsageError("comm measures a collective: it needs --cards 2 or more, or --nodes")
    return Collectives(parse_sizes(args.sizes), ops)


def run(args: argparse.Namespace) -> int:
    return execute("comm", args, measure, OPTIONS, prepare=prepare)


def measure(work: Collectives, args: argparse.Namespace) -> dict | None:
    adapter, index = resolve(args.device, args.precision)
    comm.init_distributed(adapter, index)
    device, world = comm.collective_device(adapter, index), comm.get_world_size()

    def sync() -> None:
        adapter.synchronize(index)

    rows = []
    for op in work.ops:
        for nbytes in work.sizes:
            iters = args.iters or min(20, max(2, SPAN_BYTES // nbytes))
            seconds = comm.time_collective(op, nbytes, device, sync, iters, args.warmup)
            algbw, busbw = comm.bus_bandwidth(op, nbytes, world, seconds)
            rows.append(
                {
                    "op": op,
                    "bytes": nbytes,
                    "time_us": seconds * 1e6,
                    "algbw_gb_s": algbw,
                    "busbw_gb_s": busbw,
                }
            )
    if not comm.is_main_process():
        return None
    return {"collectives": rows, "measured_iters": args.iters, "warmup_iters": args.warmup}


def table(rows: list[dict]) -> str:
    """The record's collectives as nccl-tests prints them: one line per op and size."""
    head = f"{'op':<11}{'bytes':>12}{'time us':>12}{'algbw GB/s':>12}{'busbw GB/s':>12}"
    lines = [
        f"{r['op']:<11}{r['bytes']:>12}{r['time_us']:>12.1f}{r['algbw_gb_s']:>12.3f}"
        f"{r['busbw_gb_s']:>12.3f}"
        for r in rows
    ]
    return "\n".join([head, *lines])
