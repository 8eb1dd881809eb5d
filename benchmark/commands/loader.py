"""`python -m benchmark loader`: how fast this host feeds a card, and how many cards it can feed.

The config's own training loader (dataset, transforms, aspect grouping, collate) at its input
size, timed with the harness's one timer as training times its data: each batch waited for,
pinned and copied to the card (`prefetch_to_device`), for each worker count of --workers. Apart
from the loader, each image's decode and transform time in this process. With
--compute-img-s (one card's compute-only rate, e.g. from a train record) the record says how
many such cards the best worker count feeds: `cards fed` = loader img/s / compute img/s.
"""

from __future__ import annotations

import argparse
import logging
import os

from benchmark.errors import UsageError
from benchmark.launch import execute
from benchmark.measure import DATA_TIME_COVERS, IterationTimer, distribution_ms, summarize
from benchmark.workload.args import add_run_arguments
from benchmark.workload.build import Workload
from rcnn.data.benchmark import first_train_dataset, image_times, train_loader
from rcnn.engine.prefetch import prefetch_to_device
from rcnn.engine.run import start_session

logger = logging.getLogger("rcnn.bench")
OPTIONS = ("workers", "compute_img_s")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("loader", help="measure a config's data loader alone (one record)")
    p.add_argument(
        "--workers",
        help="comma-separated loader worker counts (default 0,1,N: N this host's cores)",
    )
    p.add_argument(
        "--compute-img-s",
        type=float,
        help="one card's compute-only img/s: the record says how many such cards this feeds",
    )
    add_run_arguments(p, "train")
    p.set_defaults(func=run)


def worker_counts(text: str | None) -> list[int]:
    """--workers as sorted distinct counts; None gives 0, 1 and this host's core count."""
    if text is None:
        return sorted({0, 1, os.cpu_count() or 1})
    parts = text.split(",")
    if not all(p.strip().isdigit() for p in parts):
        raise UsageError(f"--workers {text}: expected counts like 0,1,4")
    return sorted({int(p) for p in parts})


def run(args: argparse.Namespace) -> int:
    return execute("loader", args, measure, OPTIONS, check=_check, workload_mode="train")


def _check(args: argparse.Namespace) -> None:
    worker_counts(args.workers)
    if args.cards != 1 or args.nodes != 1:
        raise UsageError("the loader benchmark runs in one process: --cards 1, --nodes 1")
    if args.iters is None:
        raise UsageError("--iters (measured batches per worker count) must be given")
    if args.compute_img_s is not None and args.compute_img_s <= 0:
        raise UsageError(f"--compute-img-s must be > 0, got {args.compute_img_s}")


def measure(workload: Workload, args: argparse.Namespace) -> dict:
    session = start_session(workload.cfg)
    adapter, index = session.adapter, session.index
    runs, best = [], None
    for workers in worker_counts(args.workers):
        loader = train_loader(workload.cfg, workers, args.warmup + args.iters)
        timer = IterationTimer(lambda: adapter.synchronize(index), args.warmup)
        for images, _, _ in timer.iterate(prefetch_to_device(loader, adapter, index)):
            timer.step_end(len(images.image_sizes))
        window = timer.window()
        fields = summarize(window)
        runs.append(
            {
                "workers": workers,
                "throughput_img_s": fields["throughput_img_s"],
                "first_batch_s": window.first_iter_s,
            }
        )
        if best is None or fields["throughput_img_s"] > best["throughput_img_s"]:
            best = fields
    dataset = first_train_dataset(workload.cfg)
    times = image_times(dataset, args.iters * workload.batch_per_card)
    loader = {
        "runs": runs,
        "pinned": adapter.supports_pinned_memory(),
        "decode_ms": distribution_ms(times.decode_s),
        "transform_ms": distribution_ms(times.transform_s),
        "compute_img_s": args.compute_img_s,
        "cards_fed": best["throughput_img_s"] / args.compute_img_s if args.compute_img_s else None,
    }
    print(loader_table(loader))
    # the timing fields are the best worker count's: its batch times are the step times
    return {
        **best,
        "data_time_share": None,  # a loader alone only waits for data
        "data_bound": None,
        "dataset": workload.data.record(len(dataset)),
        "data_time_covers": DATA_TIME_COVERS,
        "loader": loader,
    }


def loader_table(loader: dict) -> str:
    """The loader benchmark as the console shows it."""
    lines = ["workers   img/s   first batch s"]
    lines += [
        f"{r['workers']:>7} {r['throughput_img_s']:>7.1f} {r['first_batch_s'] or 0:>15.2f}"
        for r in loader["runs"]
    ]
    for name in ("decode_ms", "transform_ms"):
        d = loader[name]
        lines.append(f"{name[:-3]} per image: p50 {d['p50']:.1f} ms, p90 {d['p90']:.1f} ms")
    lines.append(f"pinned copies: {'on' if loader['pinned'] else 'off (not on this device)'}")
    if loader["cards_fed"] is not None:
        lines.append(
            f"cards fed at {loader['compute_img_s']:.1f} img/s compute each: "
            f"{loader['cards_fed']:.2f}"
        )
    return "\n".join(lines)
