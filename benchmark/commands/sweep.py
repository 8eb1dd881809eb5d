"""`python -m benchmark sweep`: precisions x card counts (x batch sizes for inference) of a model.

Each cell is its own `python -m benchmark train|infer` process and record, so a failing cell (an
OOM, a NaN, a crash) never stops the sweep. A cell this machine cannot run is not dropped: it is
recorded as "skipped" with the reason (the device is absent, the adapter does not support the
precision, or more cards are asked than it has; on CPU a card is a process, at most one per
core). Then the sweep's tables are printed and written to RESULTS/sweeps/<id>/REPORT.md;
`python -m benchmark report` merges them with every other record.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmark.record import (
    check_results_dir,
    new_record,
    new_run_id,
    read_records,
    write_run,
)
from benchmark.report import build_report
from benchmark.workload.args import SIZE_HELP, format_size, parse_size
from benchmark.workload.build import card_limit
from benchmark.workload.lookup import config_path
from rcnn.device import PRECISIONS, DeviceAdapter, DeviceError, resolve

MODES = {"train": ("train",), "infer": ("infer",), "both": ("train", "infer")}
PASSED_ON = ("device", "size", "data", "iters", "warmup", "repeats", "ckpt", "results")


def _peaks(text: str) -> dict[str, float]:
    try:
        pairs = [item.split("=") for item in text.split(",")]
        return {name: float(value) for name, value in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PRECISION=TFLOPS[,...], got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,2,4, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers like 1,2,4, got {text!r}")
    return values


def _precisions(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in values if v not in PRECISIONS]
    if unknown or not values:
        raise argparse.ArgumentTypeError(
            f"precisions are a comma list of {', '.join(PRECISIONS)}, got {text!r}"
        )
    return values


def _switches(text: str) -> list[bool]:
    """A comma list of off/on (an execution-mode axis) as booleans."""
    words = [v.strip() for v in text.split(",") if v.strip()]
    if not words or set(words) - {"off", "on"}:
        raise argparse.ArgumentTypeError(f"expected off, on or off,on; got {text!r}")
    return [w == "on" for w in dict.fromkeys(words)]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run the precision x cards (x batch) matrix of a model")
    p.add_argument("--model", required=True, help="config NAME or .yaml path")
    p.add_argument("--mode", choices=sorted(MODES), default="both")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--precisions",
        type=_precisions,
        default=list(PRECISIONS),
        help="comma list (default: all; unsupported ones are recorded as skipped)",
    )
    p.add_argument("--cards", type=_ints, default=[1, 2, 4, 8], help="comma list of card counts")
    p.add_argument(
        "--batches",
        type=_ints,
        default=[1, 2, 4],
        help="inference batch sizes per card (comma list)",
    )
    p.add_argument("--train-batch", type=int, default=2, help="training batch per card")
    p.add_argument(
        "--compile",
        type=_switches,
        default=[False],
        help="execution-mode axis: off (eager), on (torch.compile'd backbone) or off,on; a "
        "device that cannot compile records its 'on' cells as skipped",
    )
    p.add_argument(
        "--channels-last",
        type=_switches,
        default=[None],
        help="memory-format axis: off, on (channels-last backbone) or off,on (default: the "
        "layout the device adapter runs each mode fastest in)",
    )
    p.add_argument("--size", type=parse_size, help=SIZE_HELP)
    p.add_argument("--data", default="synthetic")
    p.add_argument(
        "--iters",
        type=int,
        help="measured iterations per cell (train default 20; infer default one test pass)",
    )
    p.add_argument("--warmup", type=int)
    p.add_argument("--repeats", type=int)
    p.add_argument("--ckpt", help="weights for every cell")
    p.add_argument(
        "--peak-tflops",
        type=_peaks,
        default={},
        help="one card's peak TFLOP/s per precision, e.g. fp32=19.5,bf16=312 (default: the "
        "device adapter's datasheet table, where it knows the card)",
    )
    p.add_argument("--results", default=os.environ.get("RESULTS_DIR") or "results")
    p.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        metavar="KEY VALUE",
        help="config overrides for every cell",
    )
    p.set_defaults(func=run)


@dataclass
class Cell:
    mode: str
    precision: str
    cards: int
    batch: int
    run_id: str
    compile: bool = False
    channels_last: bool = False

    def argv(self, args: argparse.Namespace) -> list[str]:
        argv = [
            self.mode,
            "--model",
            args.model,
            "--precision",
            self.precision,
            "--cards",
            str(self.cards),
            "--batch",
            str(self.batch),
        ]
        argv += ["--compile"] if self.compile else []
        argv += ["--channels-last", "on" if self.channels_last else "off"]
        if self.precision in args.peak_tflops:
            argv += ["--peak-tflops", str(args.peak_tflops[self.precision])]
        for name in PASSED_ON:
            value = getattr(args, name)
            if value is not None:
                text = format_size(value) if name == "size" else str(value)
                argv += [f"--{name}", text]
        return [*argv, "--run-id", self.run_id, *args.opts]

    def command(self, args: argparse.Namespace) -> str:
        argv = self.argv(args)
        cut = argv.index("--run-id")
        return shlex.join(["python", "-m", "benchmark", *argv[:cut], *argv[cut + 2 :]])


def cells(args: argparse.Namespace, adapter: DeviceAdapter | None = None) -> list[Cell]:
    """The matrix; an unset layout axis is the one `adapter` runs each mode fastest in."""
    out = []
    axes = (MODES[args.mode], args.precisions, args.cards, args.compile, args.channels_last)
    for mode, precision, cards, compiled, layout in itertools.product(*axes):
        fast = adapter is not None and mode in adapter.channels_last_modes
        channels_last = fast if layout is None else layout
        for batch in args.batches if mode == "infer" else [args.train_batch]:
            out.append(Cell(mode, precision, cards, batch, new_run_id(), compiled, channels_last))
    return out


def skip_reason(cell: Cell, adapter: DeviceAdapter | None, absent: str | None) -> str | None:
    """Why this machine cannot run the cell, or None when it can."""
    if adapter is None:
        return absent
    try:
        adapter.check_precision(cell.precision)
    except DeviceError as err:
        return str(err)
    reason = card_limit(adapter, cell.cards)
    if reason is not None:
        return f"{cell.cards} cards asked; {reason}"
    supported, answer = adapter.supports_compile()
    return None if supported or not cell.compile else f"torch.compile: {answer}"


def run(args: argparse.Namespace) -> int:
    check_results_dir(args.results)
    model = config_path(args.model).stem
    adapter, absent = None, None
    try:
        adapter, _ = resolve(args.device)
    except DeviceError as err:
        absent = str(err)
    device_type = adapter.name if adapter else args.device.partition(":")[0]
    statuses = []
    for cell in cells(args, adapter):
        reason = skip_reason(cell, adapter, absent)
        if reason is None:
            print(f"== sweep: {cell.command(args)}", flush=True)
            cmd = [sys.executable, "-m", "benchmark", *cell.argv(args)]
            code = subprocess.run(cmd, check=False).returncode
            statuses.append((cell, "ok" if code == 0 else f"exit {code}"))
            continue
        record = new_record(
            adapter=adapter,
            run_id=cell.run_id,
            status="skipped",
            error=reason,
            mode=cell.mode,
            model=model,
            device_type=device_type,
            precision=cell.precision,
            compile=cell.compile,
            channels_last=cell.channels_last,
            cards=cell.cards,
            batch_per_card=cell.batch,
            global_batch=cell.batch * cell.cards,
            command=cell.command(args),
        )
        write_run(args.results, record)
        statuses.append((cell, f"skipped: {reason}"))
    print(sweep_table(statuses))
    return _report(args, [c.run_id for c, _ in statuses])


def sweep_table(statuses: list[tuple[Cell, str]]) -> str:
    lines = ["mode   precision  compile  channels_last  cards  batch  result"]
    lines += [
        f"{c.mode:<6} {c.precision:<10} {'on' if c.compile else 'off':<8} "
        f"{'on' if c.channels_last else 'off':<14} {c.cards:<6} {c.batch:<6} {s}"
        for c, s in statuses
    ]
    return "\n".join(lines)


def _report(args: argparse.Namespace, run_ids: list[str]) -> int:
    """Print this sweep's tables (failed cells with their reason); 0 when every cell left a
    record, whatever its status, so a script goes on to its report; 1 when one left none."""
    records, _ = read_records([args.results])
    ours = [r for r in records if r["run_id"] in set(run_ids)]
    if ours:
        out = Path(args.results) / "sweeps" / run_ids[0]
        report = build_report(ours, out, sources=[str(args.results)])
        print(report.summary)
        print(f"sweep report: {out / 'REPORT.md'}", file=sys.stderr)
    missing = len(set(run_ids) - {r["run_id"] for r in ours})
    if missing:
        print(f"error: {missing} of {len(run_ids)} sweep cells left no record", file=sys.stderr)
        return 1
    return 0
