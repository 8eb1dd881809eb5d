"""`python -m benchmark infer`: one measured inference run of a model config, then COCO eval.

The model (with --ckpt's weights, else random ones: its AP is near zero and recorded as such)
runs in eval mode over DATASETS.TEST with TEST.IMS_PER_BATCH = batch x cards, through the
library's own `compute_on_dataset`; the timer sees every batch (latency per batch). Without
--iters the measured window is one pass over the test set after the warm-up; with --iters the
test set is cycled as often as needed. Each batch's copy to the card is data time (prefetched
inside the timed wait); its masks are pasted at the original size and RLE-encoded after the
batch, on a paused clock. The predictions are scored with COCO evaluation (bbox,
and segm for mask models) when they cover the whole test set; a run on part of it records no
accuracy rather than a misleading one.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import logging
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from benchmark.errors import UsageError
from benchmark.flops import run_flop_fields
from benchmark.launch import execute
from benchmark.measure import PausableClock, RepeatedTimers, reduce_across_ranks, summarize
from benchmark.workload.args import add_run_arguments
from benchmark.workload.build import Workload
from benchmark.workload.lookup import weights_id
from rcnn.checkpoint import load_weights
from rcnn.data import make_data_loader
from rcnn.engine.coco_eval import default_evaluator, evaluate_results, image_result
from rcnn.engine.inference import compute_on_dataset, gather_predictions
from rcnn.engine.precision_check import ConvDtypeProbe
from rcnn.engine.prefetch import DATA_TIME_COVERS, prefetch_to_device
from rcnn.engine.run import build_model, iou_types, start_session
from rcnn.layers import kernels_used, preflight
from rcnn.utils import comm

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
    loader = make_data_loader(cfg, is_train=False, is_distributed=session.distributed)[0]
    iters = args.iters or max(len(loader) - args.warmup, 1)
    clock = PausableClock()
    timers = RepeatedTimers(
        lambda: adapter.synchronize(index), args.warmup, iters, args.repeats, clock, args.sync
    )
    # pasting masks at the original size and RLE-encoding them is the evaluator's work, paused
    paste = cfg.TEST.MASK_PASTE
    convert = clock.excluding(
        functools.partial(image_result, dataset=loader.dataset, mask_paste=paste)
    )

    def batch_end(images: int) -> None:
        timers.step_end(images)
        if timers.warmup_done:
            adapter.reset_peak_memory(index)  # the measured window's peak, not the warm-up's

    if args.warmup == 0:
        adapter.reset_peak_memory(index)
    stream = itertools.islice(passes(loader), args.warmup + iters * args.repeats)
    # the copy to the card happens inside the timed wait for each batch: data time
    batches = timers.iterate(prefetch_to_device(stream, adapter, index))
    with ConvDtypeProbe(model) as probe:
        local = compute_on_dataset(
            model, batches, adapter, index, session.precision, on_batch=batch_end, convert=convert
        )
    windows = [reduce_across_ranks(w) for w in timers.windows()]
    peaks = comm.all_gather_objects(adapter.peak_memory_mb(index))
    predictions = gather_predictions(local)
    if predictions is None:
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
    fields = summarize(windows, latency=True)
    fields.update(
        dataset=workload.data.record(len(dataset)),
        peak_mem_mb=max((p for p in peaks if p is not None), default=None),
        peak_mem_kind=adapter.peak_memory_kind,
        ops=kernels_used() or preflight(adapter.torch_device(index)),
        accuracy=accuracy(scores) if scores else None,
        compute_dtype=probe.dtype_name,
        data_time_covers=DATA_TIME_COVERS,
        weights=args.ckpt or "random",
        weights_id=weights_id(args.ckpt),
        **evaluated,
    )
    # counted after the window, on a copy of the model: no count is ever timed
    fields.update(run_flop_fields(model, workload, fields, args, adapter, index))
    why = probe.mismatch(session.precision, adapter.name)
    if why:  # measured, but not at the precision asked for: the cell fails and says why
        fields.update(status="failed", error=why)
    return fields
