"""One measured run resolved before it starts: its config with every override, cards and data.

`train` and `infer` share it, and so does the launcher: the parent of a multi-card run builds the
same workload first (so a bad config, dataset or device fails before torchrun starts) and hands
the workers the same arguments back (`args.to_argv`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yacs.config import CfgNode

from benchmark.errors import UsageError
from benchmark.workload.datasets import DataSetup, prepare_data
from benchmark.workload.lookup import config_hash, config_path
from rcnn.config import load_config
from rcnn.device import DeviceAdapter, resolve


def _size_overrides(size: tuple[int, int] | None) -> list[str]:
    """The INPUT.* overrides of `--size MINxMAX` (None: the config's own sizes)."""
    if size is None:
        return []
    lo, hi = size
    return [
        "INPUT.MIN_SIZE_TRAIN",
        f"({lo},)",
        "INPUT.MAX_SIZE_TRAIN",
        str(hi),
        "INPUT.MIN_SIZE_TEST",
        str(lo),
        "INPUT.MAX_SIZE_TEST",
        str(hi),
    ]


def card_limit(adapter: DeviceAdapter, cards: int) -> str | None:
    """Why this machine cannot give `cards` cards, or None when it can: an accelerator gives its
    visible cards, a host without one a process per core (a 'card' on CPU is a gloo process)."""
    limit = adapter.device_count() if adapter.is_accelerator else (os.cpu_count() or 1)
    if cards <= limit:
        return None
    unit = "visible cards" if adapter.is_accelerator else "cores (one process per core)"
    return f"this machine has {limit} {adapter.name} {unit}"


def cards_per_node(args: argparse.Namespace, adapter: DeviceAdapter) -> int:
    """--cards as a number: 'all' is every visible card (one process on CPU: all its cores)."""
    if args.cards == "all":
        return adapter.device_count()
    reason = card_limit(adapter, args.cards)
    if reason is not None:
        raise UsageError(f"--cards {args.cards}: {reason}")
    return args.cards


@dataclass
class Workload:
    """One measured run, resolved: its config (every override applied) and record fields."""

    mode: str
    model: str
    cfg: CfgNode
    cards: int  # all processes, every node
    nodes: int
    batch_per_card: int
    data: DataSetup

    @property
    def global_batch(self) -> int:
        return self.batch_per_card * self.cards

    def record_fields(self) -> dict[str, Any]:
        inp = self.cfg.INPUT
        train = self.mode == "train"
        return {
            "mode": self.mode,
            "model": self.model,
            "cards": self.cards,
            "nodes": self.nodes,
            "precision": self.cfg.MODEL.PRECISION,
            "compile": self.cfg.MODEL.COMPILE,
            "channels_last": self.cfg.MODEL.CHANNELS_LAST,
            "batch_per_card": self.batch_per_card,
            "global_batch": self.global_batch,
            "image_min_size": max(inp.MIN_SIZE_TRAIN) if train else inp.MIN_SIZE_TEST,
            "image_max_size": inp.MAX_SIZE_TRAIN if train else inp.MAX_SIZE_TEST,
            "config_hash": config_hash(self.cfg),
            "seed": self.cfg.SEED,
        }


def channels_last(mode: str, args: argparse.Namespace) -> bool:
    """The layout asked for, else the one the device adapter runs `mode` fastest in."""
    if args.channels_last is not None:
        return args.channels_last
    adapter, _ = resolve(args.device)
    return mode in adapter.channels_last_modes


def planned_iterations(args: argparse.Namespace) -> int | None:
    """Warm-up plus every repeat's measured iterations (None: one inference pass decides)."""
    return None if args.iters is None else args.warmup + args.iters * args.repeats


def build_workload(
    mode: str, args: argparse.Namespace, cards: int, run_dir: Path, extra: Iterable[str] = ()
) -> Workload:
    """Config with the run's overrides (`extra` last), then the user's; the data made and
    registered."""
    path = config_path(args.model)
    world = cards * args.nodes
    batch = args.batch * world  # the config's batch keys are global; weak scaling keeps per-card
    ours = [
        "MODEL.DEVICE",
        args.device,
        "MODEL.PRECISION",
        args.precision,
        "MODEL.COMPILE",
        str(args.compile),
        "MODEL.CHANNELS_LAST",
        str(channels_last(mode, args)),
        "SOLVER.IMS_PER_BATCH",
        str(batch),
        "TEST.IMS_PER_BATCH",
        str(batch),
        "OUTPUT_DIR",
        str(run_dir),
        *_size_overrides(args.size),
        *extra,
    ]
    planned = planned_iterations(args)
    if mode == "train":
        ours += ["SOLVER.MAX_ITER", str(planned)]
        if args.ckpt:
            ours += ["MODEL.WEIGHT", args.ckpt]
    first = load_config(path, [*ours, *args.opts])
    evaluate = first.SOLVER.TEST_PERIOD > 0  # training that evaluates needs the test split
    data = prepare_data(args.data, mode, first, Path(args.results), batch, evaluate)
    cfg = load_config(path, [*ours, *data.overrides, *args.opts])
    global_batch = cfg.SOLVER.IMS_PER_BATCH if mode == "train" else cfg.TEST.IMS_PER_BATCH
    if global_batch % world:
        raise UsageError(f"the global batch {global_batch} does not split over {world} cards")
    return Workload(mode, path.stem, cfg, world, args.nodes, global_batch // world, data)
