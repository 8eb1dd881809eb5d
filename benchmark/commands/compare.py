"""`python -m benchmark compare`: our detector vs its torchvision peer on the same inputs.

Both impls get the same tensors at the same size and do the same work (`benchmark.impls.WORK`,
each record's `work`); iterations alternate between impls (A, B, A, B, ...) so that load from
other processes on a shared host hits both alike. Each impl is timed by its own TimedRun (the
timing contract, benchmark.measure) on a clock paused while the other impl runs; a training
step is the library Trainer's. With --repeats, each repeat is one window per impl, and the
ratio rcnn/torchvision is taken per repeat (both windows of a repeat ran interleaved, under one
load), then reported as median, min and max. Prints images/s per impl, per-iteration
percentiles and the ratio, and writes one record per impl through `save_run`, as train and
infer do: a run that stops early (a signal, an error) leaves a failed record per impl.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from yacs.config import CfgNode

from benchmark.errors import USER_ERRORS, UsageError
from benchmark.flops import flop_fields, try_count_gflops
from benchmark.impls import (
    IMPLS,
    WORK,
    Batch,
    Impl,
    build_impls,
    impl_config,
    impl_trainer,
    model_config,
    synthetic_batch,
)
from benchmark.launch import EXIT, _LogCapture, exit_code, warn_if_busy
from benchmark.measure import TimedRun, Window, spread
from benchmark.record import check_results_dir, new_run_id, save_run, status_of
from benchmark.workload.args import (
    add_run_arguments,
    add_threads_argument,
    check_counts,
    format_size,
)
from benchmark.workload.identity import identity, key, work_config_hash
from benchmark.workload.lookup import config_hash
from rcnn.device import DeviceAdapter
from rcnn.engine.run import compile_backend, start_session
from rcnn.errors import interrupted_line, one_line, unexpected_message
from rcnn.layers import dispatch
from rcnn.utils.env import host_threads

logger = logging.getLogger("rcnn.bench")
DATASET = "compare-synthetic"  # one synthetic batch (impls.synthetic_batch), seeded by --seed
# What data time covers in compare's records (the timing contract's rule 2 has no loader here).
DATA_TIME_COVERS = "the sync alone: the batch is on the card before the window"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="images/s of our detector vs torchvision's, same inputs")
    p.add_argument(
        "--impl",
        action="append",
        choices=IMPLS,
        dest="impls",
        help="impl to run (repeat; default: rcnn and torchvision)",
    )
    p.add_argument("--mode", choices=("infer", "train"), default="infer")
    p.add_argument(
        "--peer-channels-last",
        action="store_true",
        help="torchvision's backbone in channels-last too (default: its own layout)",
    )
    add_threads_argument(p)
    p.add_argument(
        "--different-weights",
        action="store_true",
        help="keep each impl's own init and our config's layout (default: ours loads "
        "the peer's weights in its layout, so both do the same work)",
    )
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time (the benchmark's measure) or this process's CPU time, which "
        "is steadier on a shared host",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    # then train's and infer's options, and KEY VALUE overrides (for both impls) last
    add_run_arguments(p, "infer")
    p.set_defaults(func=run, batch=1, warmup=1, iters=3)


def _check(args: argparse.Namespace) -> None:
    """What compare cannot do of the shared options, refused before any work."""
    check_counts(args)  # every count of the shared options
    if args.cards != 1 or args.nodes != 1:
        raise UsageError("compare runs on one card: drop --cards and --nodes")
    if args.data != "synthetic":
        raise UsageError("compare feeds both impls one synthetic batch: drop --data")
    if args.ckpt:
        raise UsageError("compare starts both impls from the same random weights: drop --ckpt")


def _config(args: argparse.Namespace) -> CfgNode:
    """The config both impls are built from (impls.impl_config), the user's overrides last."""
    same = not args.different_weights
    return impl_config(args.model, same, args.channels_last, args.compile, args.opts)


def _size(args: argparse.Namespace) -> tuple[int, int]:
    """--size, else the config's own size for the mode: every image is MIN high, MAX wide."""
    if args.size is not None:
        return args.size
    inp = model_config(args.model, args.opts).INPUT
    if args.mode == "train":
        return max(inp.MIN_SIZE_TRAIN), inp.MAX_SIZE_TRAIN
    return inp.MIN_SIZE_TEST, inp.MAX_SIZE_TEST


def _timed(
    impls: list[Impl],
    adapter: DeviceAdapter,
    index: int,
    batch: Batch,
    args: argparse.Namespace,
    step: Callable[[Impl, bool], None],
) -> dict[str, TimedRun]:
    """Alternate impls iteration by iteration (A, B, A, B, ...), each timed by its own
    TimedRun (the timing contract) on a clock paused while the other impls run: each window
    holds only its impl's iterations, back to back. `step(impl, last)` runs one iteration's
    compute on the batch, which is on the card already (data time is the sync alone)."""
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    runs = {
        impl.name: TimedRun(
            adapter, index, args.warmup, args.iters, args.repeats, args.sync, clock, args.mode
        )
        for impl in impls
    }

    def others_paused(name: str, fn: Callable[[], None]) -> Callable[[], None]:
        for other, run in runs.items():
            fn = run.excluding(fn) if other != name else fn
        return fn

    streams = {name: run.batches(itertools.repeat(batch), copy=False) for name, run in runs.items()}
    total = args.warmup + args.iters * args.repeats
    try:
        for i in range(total):
            for impl in impls:

                def iteration(impl: Impl = impl, last: bool = i == total - 1) -> None:
                    next(streams[impl.name])
                    step(impl, last)
                    runs[impl.name].step_end(batch.size)

                others_paused(impl.name, iteration)()
    except BaseException:
        for run in reversed(runs.values()):  # torch's own methods back, whatever stopped us
            run.conduct.close(0)
        raise
    return runs


def _identity(args: argparse.Namespace, impl: str) -> dict:
    """The record fields of `impl`'s run known before any work: a failed run's record too."""
    return {
        "run_id": new_run_id(),
        "mode": args.mode,
        "model": Path(args.model).stem,
        "impl": impl,
        "device_type": args.device.partition(":")[0],
        "precision": args.precision,
        "cards": 1,
        "batch_per_card": args.batch,
        "global_batch": args.batch,
        "image_min_size": args.size[0] if args.size else None,
        "image_max_size": args.size[1] if args.size else None,
        "seed": args.seed,
        "work": WORK[args.mode],
    }


def _measured(
    args: argparse.Namespace,
    adapter: DeviceAdapter,
    index: int,
    impls: list[Impl],
    batch: Batch,
    runs: dict[str, TimedRun],
) -> dict[str, dict]:
    """Each impl's measured record fields, by impl."""
    cfg = _config(args)
    # each run's conduct patched torch over the other's: close in the reverse order of opening
    timed = {name: runs[name].finish() for name in reversed(runs)}
    fields = {}
    for impl in impls:
        gflops, why = try_count_gflops(impl, batch, args.mode)  # after every timed iteration
        measured = timed[impl.name]
        peak = args.peak_tflops or adapter.peak_tflops(index, args.precision)
        measured.update(flop_fields(gflops, measured["throughput_img_s"], 1, peak))
        weights = "random, shared" if not args.different_weights else "random, own init"
        work = identity(
            work_config_hash(cfg),
            args.mode,
            args.size,
            DATASET,
            None,
            weights,
            impl.compiled,
            impl.channels_last,
        )
        measured.update(
            device_type=adapter.name,
            dataset={"name": DATASET, "images": args.batch, "fingerprint": None},
            weights=weights,
            workload=work,
            workload_id=key(work),
            config_hash=config_hash(cfg),
            compile=impl.compiled,
            channels_last=impl.channels_last,
            # ours goes through the dispatcher; the peer calls torchvision's kernels itself
            ops=dispatch.kernels_used() if impl.name == "rcnn" else None,
            data_time_covers=DATA_TIME_COVERS,
            # both impls live in one process: its peak is theirs together
            peak_mem_mb=None,
            notes=[why] if why else None,
        )
        fields[impl.name] = measured
    return fields


def run(args: argparse.Namespace) -> int:
    # like for like: our layout is what the user names, NCHW unless --channels-last on (train
    # and infer take the adapter's fastest layout instead)
    args.channels_last = bool(args.channels_last)
    with host_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The run's lifecycle, as train's and infer's: checks, one line for any error, and one
    record per impl through `save_run`, a failed one when the run stops before it ends."""
    identities = {name: _identity(args, name) for name in dict.fromkeys(args.impls or IMPLS)}
    log = _LogCapture()
    log.start()
    if args.json:  # stdout holds the JSON alone; log.txt still gets the log
        logging.getLogger("rcnn").handlers = [log.handler]
    warn_if_busy()
    results = check_results_dir(args.results)
    adapter = None
    try:
        _check(args)
        args.size = _size(args)
        for fields in identities.values():
            fields.update(image_min_size=args.size[0], image_max_size=args.size[1])
        adapter, index = _session(args)
        for fields in identities.values():
            fields["device_type"] = adapter.name
        measured, windows, config_text = _measure(args, adapter, index)
    except (Exception, KeyboardInterrupt) as exc:
        if isinstance(exc, KeyboardInterrupt):
            message = interrupted_line(exc)
        elif isinstance(exc, USER_ERRORS):
            message = one_line(exc)
        else:  # the traceback goes to a file, never to the console
            message = unexpected_message(exc, "compare", str(results))
        print(f"error: {message}", file=sys.stderr)
        for fields in identities.values():
            _, why = save_run(results, fields, exc, adapter, log.text())
            if why:
                print(f"error: {why}", file=sys.stderr)
        status = status_of(exc)
        return EXIT["interrupted"] if status == "interrupted" else exit_code(status, exc)
    records = {}
    for name, fields in measured.items():
        record = {**identities[name], **fields}
        run_dir, why = save_run(results, record, None, adapter, log.text(), config_text)
        if why:
            print(f"error: {why}", file=sys.stderr)
            return EXIT["failed"]
        records[name] = json.loads((run_dir / "record.json").read_text(encoding="utf-8"))
    _print(args, adapter, records, windows)
    return 0


def _session(args: argparse.Namespace) -> tuple[DeviceAdapter, int]:
    """The device, precision and seed set up as train and infer set them (`start_session`)."""
    cfg = _config(args).clone()
    cfg.defrost()
    cfg.MODEL.DEVICE, cfg.MODEL.PRECISION, cfg.SEED = args.device, args.precision, args.seed
    session = start_session(cfg)
    return session.adapter, session.index


def _measure(
    args: argparse.Namespace, adapter: DeviceAdapter, index: int
) -> tuple[dict[str, dict], dict[str, list[Window]], str]:
    """Build both impls on the same batch, time them interleaved; each impl's record fields,
    its windows and the config both were built from."""
    dispatch.reset()  # the record's `ops` says what this run's model ran
    device = adapter.torch_device(index)
    height, width = args.size  # landscape: the resize keeps MIN x MAX images as they are
    model = _config(args).MODEL
    masks = model.MASK_ON and args.mode == "train"
    num_classes = model.ROI_BOX_HEAD.NUM_CLASSES
    batch = synthetic_batch(args.batch, height, width, num_classes, seed=args.seed, masks=masks)
    impls = build_impls(
        args.model,
        list(dict.fromkeys(args.impls or IMPLS)),
        (height, width),
        calibration=torch.stack(batch.images),
        same_weights=not args.different_weights,
        seed=args.seed,
        channels_last=args.channels_last,
        compile_backend=compile_backend(adapter) if args.compile else None,
        peer_channels_last=args.peer_channels_last,
        user=args.opts,
    )
    batch = batch.to(device)
    for impl in impls:
        impl.model.to(device).train(args.mode == "train")
    trainers = {i.name: impl_trainer(i, adapter, index, args.precision) for i in impls}

    def step(impl: Impl, last: bool) -> None:
        if args.mode == "train":  # with --sync window, the losses are read at the end only
            trainers[impl.name].step(batch, [], read=args.sync == "iteration" or last)
            return
        with torch.inference_mode(), adapter.autocast(args.precision):
            impl.infer(batch)

    logger.info("timing %s, interleaved", " and ".join(i.name for i in impls))
    runs = _timed(impls, adapter, index, batch, args, step)
    cfg = _config(args)
    fields = _measured(args, adapter, index, impls, batch, runs)
    return fields, {name: run.timers.windows() for name, run in runs.items()}, cfg.dump()


def _print(
    args: argparse.Namespace,
    adapter: DeviceAdapter,
    records: dict[str, dict],
    windows: dict[str, list[Window]],
) -> None:
    """Images/s per impl, their per-repeat values and the paired ratio (--json: as JSON)."""
    results = {
        name: {
            "images_per_s": r["throughput_img_s"],
            "repeats_images_per_s": [w.images / w.wall_s for w in windows[name]],
            "step_time_ms": r["step_time_ms"],
            "run_id": r["run_id"],
        }
        for name, r in records.items()
    }
    ratio = None
    if {"rcnn", "torchvision"} <= set(results):
        # paired by repeat: both impls' windows of a repeat ran interleaved, under one load
        ours, peer = (results[n]["repeats_images_per_s"] for n in ("rcnn", "torchvision"))
        ratio = spread([a / b for a, b in zip(ours, peer, strict=True)])
    modes = (("channels-last", args.channels_last), ("compiled", args.compile))
    modes = [m for m, on in modes if on]
    peer_layout = ", peer channels-last" if args.peer_channels_last else ""
    setup = (
        f"{args.model} {args.mode} batch {args.batch} {format_size(args.size)} "
        f"{args.precision} {adapter.name}, ours {' '.join(modes) or 'eager'}{peer_layout}, "
        f"{torch.get_num_threads()} threads, {args.repeats} x {args.iters} iters after "
        f"{args.warmup} warm-up, {args.clock} clock"
    )
    if args.json:
        out = {"setup": setup, "results": results, "ratio_rcnn_over_torchvision": ratio}
        print(json.dumps(out, indent=2))
        return
    print(setup)
    for name, r in results.items():
        p50 = r["step_time_ms"]["p50"]
        each = ", ".join(f"{v:.3f}" for v in r["repeats_images_per_s"])
        print(f"  {name:<12} {r['images_per_s']:8.3f} img/s   p50 {p50:9.1f} ms   repeats: {each}")
    if ratio is not None:
        print(
            f"  ratio rcnn/torchvision (images/s): median {ratio['median']:.3f}, "
            f"min {ratio['min']:.3f}, max {ratio['max']:.3f} over {args.repeats} repeats"
        )
    print(f"  records in {args.results}: {', '.join(r['run_id'] for r in records.values())}")
