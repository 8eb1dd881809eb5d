"""`python -m benchmark infer`: one measured inference run of a model config, then COCO eval.

The model (with --ckpt's weights, else random ones: its AP is near zero and recorded as such)
runs in eval mode over DATASETS.TEST with TEST.IMS_PER_BATCH = batch x cards, through the
library's own `compute_on_dataset`; the timer sees every batch (latency per batch). Without
--iters the measured window is one pass over the test set after the warm-up; with --iters the
test set is cycled as often as needed. The timing contract (`benchmark.measure.TimedRun`) times
it; masks are pasted at the original size and RLE-encoded after each batch, on a paused clock.
The predictions are scored with COCO evaluation (bbox, and segm for mask models) when they
cover the whole test set; a run on part of it records no accuracy rather than a misleading one.
"""

from __future__ import annotations

import argparse
import functools
import logging
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from benchmark.commands.ending import Run, record_fields
from benchmark.errors import UsageError
from benchmark.launch import execute
from benchmark.measure import TimedRun
from benchmark.workload.args import add_run_arguments
from benchmark.workload.build import Workload
from rcnn.checkpoint import load_weights
from rcnn.data import make_data_loader
from rcnn.engine.coco_eval import default_evaluator, evaluate_results, image_result
from rcnn.engine.inference import gather_predictions
from rcnn.engine.precision_check import ConvDtypeProbe
from rcnn.engine.run import build_model, iou_types, start_session

T = TypeVar("T")
logger = logging.getLogger("rcnn.bench")
STATS = ("ap", "ap50", "ap75", "ap_s", "ap_m", "ap_l")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="measure inference of a model config and its COCO AP")
    add_run_arguments(p, "infer")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return execute("infer", args, measure)


def passes(loader: Iterable[T]) -> Iterator[T]:
    """The loader's batches, pass after pass (the loader re-iterates; nothing is cached)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise UsageError("the test set has no images (DATASETS.TEST)")


def accuracy(scores: dict[str, dict[str, float]]) -> dict[str, float | None]:
    """{bbox_ap, bbox_ap50, ..., segm_ap, ...} from COCO evaluation's stats by iou type;
    COCO's -1 (no ground truth of that size) becomes null."""
    return {
        f"{iou}_{name}": stats[name] if stats[name] >= 0 else None
        for iou, stats in scores.items()
        for name in STATS
    }


def measure(workload: Workload, args: argparse.Namespace) -> dict | None:
    cfg = workload.cfg
    session = start_session(cfg)
    adapter, index = session.adapter, session.index
    model = build_model(session)
    if args.ckpt:
        report = load_weights(args.ckpt, model)
        logger.info("loaded %s: %d tensors", args.ckpt, len(report.loaded) if report else 0)
    else:
        logger.warning("no --ckpt: random weights, so the recorded AP is near zero")
    static = session.compile_shapes == "static"
    loader = make_data_loader(cfg, False, session.distributed, static_compile=static)[0]
    iters = args.iters or max(len(loader) - args.warmup, 1)
    buckets = loader.collate_fn.buckets if static else ()  # compiled before the window
    run = TimedRun(adapter, index, args.warmup, iters, args.repeats, args.sync, buckets=buckets)
    # pasting masks at the original size and RLE-encoding them is the evaluator's work: paused
    paste = cfg.TEST.MASK_PASTE
    convert = functools.partial(image_result, dataset=loader.dataset, mask_paste=paste)
    with ConvDtypeProbe(model) as probe:
        local = run.infer(model, passes(loader), session.precision, convert)
    timing = run.finish()
    predictions = gather_predictions(local)
    if predictions is None or timing is None:
        return None
    dataset = loader.dataset
    scores, evaluated = None, {}
    if len(predictions) == len(dataset):
        start, evaluator = time.perf_counter(), default_evaluator()
        scores = evaluate_results(predictions, dataset, iou_types(cfg), evaluator=evaluator)
        evaluated = {
            "evaluator": evaluator,
            "eval_s": time.perf_counter() - start,
            "mask_paste": paste if cfg.MODEL.MASK_ON else None,
        }
    else:
        logger.warning(
            "predicted %d of %d test images: no accuracy recorded (drop --iters "
            "to run one whole pass)",
            len(predictions),
            len(dataset),
        )
    ending = Run(workload, args, adapter, index)
    scored = accuracy(scores) if scores else None
    data = (len(dataset), args.ckpt)
    shapes = session.compile_shapes
    return record_fields(
        ending, timing, model, probe, data, accuracy=scored, compile_shapes=shapes, **evaluated
    )
