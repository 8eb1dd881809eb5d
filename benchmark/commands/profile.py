"""`python -m benchmark profile`: where a training step's or an inference batch's time goes.

Warm-up steps run first, unprofiled; the next --iters run under torch.profiler with the
device adapter's activities (the host always, the card's own where torch's profiler sees it:
CUDA, XPU, a plug-in's PrivateUse1). Every op's self time (its kernels' time when the profiler
saw the card's kernels, else the host's) goes to one category by the op and its scopes:

    conv fwd, conv bwd, matmul, roi ops, nms, losses, optimizer, h2d copies (and dtype casts:
    torch does both in aten::copy_), data (the wait for the loader), other ops

and `host (Python)` is the rest of the window's wall time: Python, framework overhead and, on a
card, the time it sat idle waiting for the host. Scopes are forward-time: the loss evaluators
and the dispatched roi ops and nms are labelled (rcnn::loss, rcnn::roi_align, ...), so their
backward ops go by op name (a native roi op's backward is mostly `other ops`). The table (time
and share) is printed and recorded; the Chrome trace (chrome://tracing, Perfetto) goes beside
the record as trace.json.
Times are taken under the profiler, so they run slower than an unprofiled step.

`--impl rcnn|torchvision` profiles compare's work instead (benchmark.impls): one synthetic batch
at --size, the same random weights for both impls (ours loads the peer's), compare's training
step or inference call; NCHW unless --channels-last on, for either impl. torchvision's ops fall
under the same rules (torchvision::roi_align, torchvision::nms by name); its loss code carries
no rcnn::loss label, so the parts that match ours' loss evaluators are labelled so for the run:
the RPN's anchor matching, target encoding and loss (`assign_targets_to_anchors`,
`box_coder.encode`, `compute_loss`), `fastrcnn_loss` and `maskrcnn_loss`, as ours' evaluators
hold the RPN's matching, sampling and encoding, and the box and mask losses (the box head's
proposal sampling is unlabelled in both); `batched_nms` is labelled as ours' is.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import profile as torch_profile

from benchmark.errors import UsageError
from benchmark.impls import IMPLS, WORK, Impl, build_impls, impl_trainer, synthetic_batch
from benchmark.launch import execute
from benchmark.measure import IterationTimer, summarize
from benchmark.workload.args import add_run_arguments, add_threads_argument
from benchmark.workload.build import Workload
from rcnn.compat import profiler_self_device_us
from rcnn.data import make_data_loader
from rcnn.engine.inference import compute_on_dataset
from rcnn.engine.prefetch import prefetch_to_device
from rcnn.engine.run import build_model, build_training, compile_backend, start_session
from rcnn.engine.trainer import StepResult, Trainer, TrainHooks
from rcnn.utils.env import host_threads

logger = logging.getLogger("rcnn.bench")
OPTIONS = ("mode", "impl", "threads")
TRACE = "trace.json"
CATEGORIES = (
    "conv fwd",
    "conv bwd",
    "matmul",
    "roi ops",
    "nms",
    "losses",
    "optimizer",
    "h2d copies",
    "data",
    "other ops",
    "host (Python)",
)
# (category, name fragments); the first rule an op or one of its enclosing scopes matches wins
SCOPE_RULES = (
    ("data", ("dataloader", "prefetch")),
    ("optimizer", ("optimizer.",)),
    ("nms", ("rcnn::nms", "rcnn::batched_nms", "::nms")),
    ("roi ops", ("rcnn::roi_", "roi_align", "roi_pool", "roialign", "roipool")),
    ("losses", ("loss", "cross_entropy", "nll_")),
)
# what a convolution op runs inside it (a layout copy of its input or grad) is convolution; the
# casts autocast makes around it (in aten::conv2d, above aten::convolution) are casts
CONV_OPS = (
    ("conv bwd", ("aten::convolution_backward",)),
    ("conv fwd", ("aten::convolution", "aten::_convolution")),
)
OP_RULES = (
    ("conv bwd", ("convolution_backward", "conv_backward", "convbackward")),
    ("conv fwd", ("conv",)),
    ("matmul", ("addmm", "::mm", "bmm", "matmul", "linear")),
    ("h2d copies", ("aten::copy_", "aten::_to_copy", "memcpy", "pin_memory")),
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="where a step's time goes: torch.profiler, by category")
    p.add_argument("--mode", choices=("train", "infer"), default="train")
    p.add_argument(
        "--impl",
        choices=IMPLS,
        help="profile compare's work of this impl (one synthetic batch at --size, shared "
        "weights), like for like with the other; default: the library's own run on --data",
    )
    add_threads_argument(p)
    add_run_arguments(p, "train")
    p.set_defaults(func=run, iters=3, warmup=1)


def run(args: argparse.Namespace) -> int:
    return execute("profile", args, measure, OPTIONS, check=_check, workload_mode=args.mode)


def _check(args: argparse.Namespace) -> None:
    if args.cards != 1 or args.nodes != 1:
        raise UsageError("profile runs one process: --cards 1, --nodes 1")
    if args.repeats != 1 or args.sync != "iteration":
        raise UsageError("profile takes one window, synchronized every iteration")
    if args.impl and (args.ckpt or args.data.partition(":")[0] != "synthetic"):
        raise UsageError(
            "--impl profiles compare's work: one synthetic batch, shared random "
            "weights; drop --data and --ckpt"
        )


def category(names: Iterable[str]) -> str:
    """The category of an op given its name and its enclosing scopes' names, innermost first."""
    names = [n.lower() for n in names]
    for cat, fragments in SCOPE_RULES:
        if any(f in n for n in names for f in fragments):
            return cat
    for cat, ops in CONV_OPS:
        if any(n in ops for n in names[1:]):
            return cat
    for cat, fragments in OP_RULES:
        if any(f in names[0] for f in fragments):
            return cat
    return "other ops"


class _Scoped:
    """A callable run under a profiler label, its other attributes passed through."""

    def __init__(self, label: str, inner) -> None:
        self._label, self._inner = label, inner

    def __call__(self, *args, **kwargs):
        with torch.profiler.record_function(self._label):
            return self._inner(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def label_losses(model: torch.nn.Module) -> None:
    """Run every head's loss evaluator (maskrcnn-benchmark's `loss_evaluator`) under rcnn::loss."""
    for module in model.modules():
        if hasattr(module, "loss_evaluator"):
            module.loss_evaluator = _Scoped("rcnn::loss", module.loss_evaluator)


def categorize(events, wall_s: float) -> tuple[list[dict], str]:
    """[{name, ms, share}] per category, in CATEGORIES order, host (Python) the remainder; and
    whose times the ops got: "card" when the profiler saw the card's kernels, else "host"."""
    host_ops = [e for e in events if getattr(e, "device_type", DeviceType.CPU) == DeviceType.CPU]
    # card-side kernels are counted through the op that launched them
    on_card = any(profiler_self_device_us(e) > 0 for e in host_ops)
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for event in host_ops:
        names, parent = [event.name], event.cpu_parent
        while parent is not None:
            names.append(parent.name)
            parent = parent.cpu_parent
        cat = category(names)
        # waiting for the loader is host time, on a card too
        us = (
            profiler_self_device_us(event)
            if on_card and cat != "data"
            else event.self_cpu_time_total
        )
        totals[cat] += us / 1e3
    wall_ms = wall_s * 1e3
    totals["host (Python)"] = max(wall_ms - sum(totals.values()), 0.0)
    table = [{"name": n, "ms": ms, "share": ms / wall_ms} for n, ms in totals.items()]
    return table, "card" if on_card else "host"


@contextlib.contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """The profiler's C++ side (Kineto) writes status lines straight to file descriptor 2;
    they go to the run's log instead of the console, which keeps one line per ending."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace").strip()
            if text:
                logger.debug("profiler: %s", text)


def measure(workload: Workload, args: argparse.Namespace) -> dict:
    with host_threads(args.threads):
        return _measure(workload, args)


def _measure(workload: Workload, args: argparse.Namespace) -> dict:
    session = start_session(workload.cfg)
    adapter, index = session.adapter, session.index
    activities = adapter.profiler_activities()
    timer = IterationTimer(lambda: adapter.synchronize(index), args.warmup)
    profiler = torch_profile(activities=activities)
    running = [False]

    def switch(on: bool) -> None:
        with native_stderr_to_log():
            if on:
                profiler.start()
            else:
                profiler.stop()
        running[0] = on

    def step_end(images: int) -> None:
        timer.step_end(images)
        if timer.iterations == args.warmup:
            switch(True)  # the timer has just synchronized: no warm-up work leaks in
        elif timer.iterations == args.warmup + args.iters:
            switch(False)

    if args.warmup == 0:
        switch(True)
    try:
        run_steps = _run_impl if args.impl else _run
        dataset = run_steps(workload, args, session, timer, step_end)
    finally:
        if running[0]:  # a run that failed mid-window: a profiler left on crashes at exit
            switch(False)
    fields = summarize(timer.window())
    trace = Path(workload.cfg.OUTPUT_DIR) / TRACE
    trace.parent.mkdir(parents=True, exist_ok=True)
    with native_stderr_to_log():
        table, clock = categorize(profiler.events(), sum(timer.window().step_s))
        profiler.export_chrome_trace(str(trace))
    print(profile_table(table))
    print(f"op times: the {clock}'s ({', '.join(a.name for a in activities)} profiled)")
    if args.impl:
        fields.update(impl=args.impl, work=WORK[args.mode])
    fields.update(
        dataset=dataset,
        profile={
            "activities": [a.name for a in activities],
            "categories": table,
            "op_times": clock,
            "trace": TRACE,
        },
        notes=["profile: times taken under torch.profiler, slower than an unprofiled run"],
    )
    return fields


def _run(workload: Workload, args: argparse.Namespace, session, timer, step_end) -> dict:
    """Warm-up and profiled steps of --mode, each ending in `step_end`; returns the record of
    the dataset they drew from."""
    adapter, index = session.adapter, session.index
    total = args.warmup + args.iters
    if args.mode == "train":
        training = build_training(session, resume=False, checkpoints=False)
        label_losses(training.trainer.model)

        def after_step(trainer: Trainer, step: StepResult) -> bool:
            step_end(step.images)
            return False

        batches = prefetch_to_device(training.data_loader, adapter, index)
        training.trainer.fit(timer.iterate(batches), 0, total, TrainHooks(after_step=[after_step]))
        return workload.data.record(len(training.data_loader.dataset))
    model = build_model(session)
    loader = make_data_loader(workload.cfg, is_train=False)[0]
    batches = timer.iterate(prefetch_to_device(_passes(loader, total), adapter, index))
    compute_on_dataset(model, batches, adapter, index, session.precision, on_batch=step_end)
    return workload.data.record(len(loader.dataset))


def _run_impl(workload: Workload, args: argparse.Namespace, session, timer, step_end) -> dict:
    """`_run` for compare's work of --impl (benchmark.impls): its synthetic batch, built and
    stepped as compare does."""
    adapter, index, cfg = session.adapter, session.index, workload.cfg
    train = args.mode == "train"
    inp = cfg.INPUT
    size = (
        (max(inp.MIN_SIZE_TRAIN), inp.MAX_SIZE_TRAIN)
        if train
        else (inp.MIN_SIZE_TEST, inp.MAX_SIZE_TEST)
    )
    classes, masks = cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES, cfg.MODEL.MASK_ON and train
    batch = synthetic_batch(args.batch, *size, classes, seed=cfg.SEED, masks=masks)
    layout = bool(args.channels_last)
    (impl,) = build_impls(
        args.model,
        [args.impl],
        size,
        calibration=torch.stack(batch.images),
        seed=cfg.SEED,
        channels_last=layout,
        compile_backend=compile_backend(adapter) if args.compile else None,
        peer_channels_last=layout,
        user=args.opts,
    )
    batch = batch.to(adapter.torch_device(index))
    impl.model.to(batch.images[0].device).train(train)
    trainer = impl_trainer(impl, adapter, index, session.precision) if train else None
    with labelled(impl):
        for _ in timer.iterate(itertools.repeat(batch, args.warmup + args.iters)):
            if trainer is not None:
                trainer.step(batch, [])
            else:
                with torch.inference_mode(), adapter.autocast(session.precision):
                    impl.infer(batch)
            step_end(batch.size)
    return {"name": "compare-synthetic", "images": batch.size, "fingerprint": None}


@contextlib.contextmanager
def labelled(impl: Impl) -> Iterator[None]:
    """The impl's loss code under rcnn::loss and its batched NMS under rcnn::batched_nms for
    the block (the module docstring says which parts of torchvision's)."""
    if impl.name == "rcnn":
        label_losses(impl.model)
        yield
        return
    from torchvision.models.detection import roi_heads
    from torchvision.ops import boxes

    rpn = impl.model.rpn  # instance attributes shadow the methods (encode: not decode)
    for owner, name in ((rpn, "assign_targets_to_anchors"), (rpn, "compute_loss")):
        setattr(owner, name, _Scoped("rcnn::loss", getattr(owner, name)))
    rpn.box_coder.encode = _Scoped("rcnn::loss", rpn.box_coder.encode)
    globals_ = [
        (roi_heads, "fastrcnn_loss", "rcnn::loss"),
        (roi_heads, "maskrcnn_loss", "rcnn::loss"),
        (boxes, "batched_nms", "rcnn::batched_nms"),
    ]
    saved = [(module, name, getattr(module, name)) for module, name, _ in globals_]
    for module, name, label in globals_:
        setattr(module, name, _Scoped(label, getattr(module, name)))
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def _passes(loader, batches: int) -> Iterator:
    """`batches` test batches, passing over the loader as often as it takes."""
    return itertools.islice(itertools.chain.from_iterable(itertools.repeat(loader)), batches)


def profile_table(categories: list[dict]) -> str:
    """The category table as the console shows it."""
    lines = [f"{'category':<14} {'ms':>10} {'share':>7}"]
    lines += [f"{c['name']:<14} {c['ms']:>10.1f} {c['share'] * 100:>6.1f}%" for c in categories]
    return "\n".join(lines)
