"""The command line of one measured run (train, infer), and the one `--size` syntax.

`--size MINxMAX` everywhere: the shorter image side and the cap on the longer one, as
maskrcnn-benchmark's INPUT.MIN_SIZE_* / INPUT.MAX_SIZE_*. Verbs that make images (compare,
data synth) make them MIN high and MAX wide: landscape, the largest that the resize keeps as-is.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Iterable

from benchmark.errors import UsageError
from benchmark.measure import SYNC_POLICIES
from rcnn.device import PRECISIONS

DEFAULTS = {  # per mode: batch per card, warm-up and measured iterations (None: one test pass)
    "train": {"batch": 2, "warmup": 5, "iters": 20},
    "infer": {"batch": 1, "warmup": 2, "iters": None},
}
MULTI_NODE = ("node_rank", "master_addr", "master_port")  # meaningless on one node
SIZE_HELP = "image size MINxMAX: shorter side x longest allowed longer side, e.g. 800x1333"


def parse_size(text: str) -> tuple[int, int]:
    """`--size MINxMAX` as (MIN, MAX); an argparse type, so a bad value is a usage error."""
    try:
        lo, hi = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must be MINxMAX, e.g. 800x1333, got {text!r}"
        ) from None
    if not 32 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"size needs 32 <= MIN <= MAX, got {text!r}")
    return lo, hi


def switch(text: str) -> bool:
    """`on` / `off` as a boolean; an argparse type."""
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return text == "on"


def format_size(size: tuple[int, int]) -> str:
    """The `--size` text of (MIN, MAX), as `parse_size` reads it back."""
    return f"{size[0]}x{size[1]}"


def _cards(text: str) -> int | str:
    if text == "all":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"cards must be a positive number or 'all', got {text!r}")
    return int(text)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """`--threads N`: torch's host intra-op threads for the run (0, the default: torch's own)."""

    def threads(text: str) -> int:
        if not text.isdigit():
            raise argparse.ArgumentTypeError(f"threads must be 0 or more, got {text!r}")
        return int(text)

    parser.add_argument(
        "--threads", type=threads, default=0, help="host intra-op threads (0: torch's default)"
    )


def add_run_arguments(parser: argparse.ArgumentParser, mode: str) -> None:
    """The options of one measured run (train or infer), then trailing KEY VALUE overrides."""
    d = DEFAULTS[mode]
    parser.add_argument(
        "--model",
        required=True,
        help="config NAME (models/configs[/quick]/NAME.yaml) or a .yaml path",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mlu, npu, ...")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the backbone (MODEL.COMPILE); the first iteration's time then "
        "includes compilation",
    )
    parser.add_argument(
        "--channels-last",
        type=switch,
        nargs="?",
        const=True,
        metavar="on|off",
        help="backbone in channels-last memory format (MODEL.CHANNELS_LAST); a bare flag means "
        "on (default: the layout the device adapter runs this mode fastest in)",
    )
    parser.add_argument(
        "--cards",
        type=_cards,
        default=1,
        help="cards (processes) per node, or 'all' visible; >1 runs torchrun. "
        "On CPU a card is a process, at most one per core",
    )
    parser.add_argument("--nodes", type=int, default=1, help="nodes of a multi-node run")
    parser.add_argument("--node-rank", type=int, default=0)
    parser.add_argument("--master-addr", default="127.0.0.1")
    parser.add_argument("--master-port", type=int, default=29500)
    parser.add_argument(
        "--batch",
        type=int,
        default=d["batch"],
        help=f"images per card per step (default {d['batch']}); the global batch is batch x cards",
    )
    parser.add_argument("--size", type=parse_size, help=SIZE_HELP + "; overrides INPUT.*")
    parser.add_argument(
        "--data",
        default="synthetic",
        help="synthetic[:N] | coco[:DIR] | txt:LIST[:CLASSES] | config",
    )
    parser.add_argument(
        "--iters",
        type=int,
        default=d["iters"],
        help="measured iterations per repeat"
        + (" (default: one pass over the test set)" if mode == "infer" else ""),
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=d["warmup"],
        help="iterations run before measuring (not in the statistics)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="measured windows (median, spread)")
    parser.add_argument(
        "--sync",
        choices=SYNC_POLICIES,
        default="iteration",
        help="synchronize the device every iteration (per-step latency) or only at the measured "
        "window's edges (throughput with host/device overlap)",
    )
    parser.add_argument("--ckpt", help="weights to load (a checkpoint file or catalog name)")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="one card's peak TFLOP/s at this precision, for flop_utilisation (default: the "
        "device adapter's datasheet table, where it knows the card)",
    )
    parser.add_argument(
        "--results",
        default=os.environ.get("RESULTS_DIR") or "results",
        help="results folder (default $RESULTS_DIR or results)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--run-id", help="the run's id, the same on every node of a multi-node run (default: new)"
    )
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        metavar="KEY VALUE",
        help="config overrides, e.g. MODEL.RPN.POST_NMS_TOP_N_TEST 500",
    )


def to_argv(args: argparse.Namespace, options: Iterable[str] = ()) -> list[str]:
    """The arguments that rebuild `args` (every option explicit, overrides last).

    `options` names verb-specific options (dest names) to carry beside the shared ones."""
    shared = [
        "model",
        "device",
        "precision",
        "compile",
        "channels_last",
        "cards",
        "nodes",
        "node_rank",
        "master_addr",
        "master_port",
        "batch",
        "size",
        "data",
        "iters",
        "warmup",
        "repeats",
        "sync",
        "ckpt",
        "peak_tflops",
        "results",
        *options,
        "run_id",
    ]
    argv = []
    for dest in shared:
        value = getattr(args, dest, None)
        if dest == "channels_last" and value is not None:  # off must reach a worker too
            argv += ["--channels-last", "on" if value else "off"]
            continue
        if value is None or value is False or (dest in MULTI_NODE and args.nodes == 1):
            continue
        flag = "--" + dest.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif dest == "size":
            argv += [flag, format_size(value)]
        else:
            argv += [flag, str(value)]
    if getattr(args, "worker", False):
        argv.append("--worker")
    return [*argv, *args.opts]


def command_line(verb: str, args: argparse.Namespace, options: Iterable[str] = ()) -> str:
    """The record's `command`: the run as a user would type it, without internal flags."""
    argv = to_argv(argparse.Namespace(**{**vars(args), "worker": False, "run_id": None}), options)
    return shlex.join(["python", "-m", "benchmark", verb, *argv])


COUNTS = ("batch", "warmup", "repeats", "nodes", "iters")


def check_counts(args: argparse.Namespace, names: Iterable[str] = COUNTS) -> None:
    """One UsageError for the first count below its floor (0 for --warmup, else 1); an --iters
    of None means 'one pass' and is fine."""
    for name in names:
        low = 0 if name == "warmup" else 1
        value = getattr(args, name)
        if value is not None and value < low:
            raise UsageError(f"--{name} must be >= {low}, got {value}")
