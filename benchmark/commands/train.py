"""`python -m benchmark train`: one measured training run of a model config, recorded.

The run is the library's own training (`rcnn.engine.run.build_training` and `Trainer.fit`), with
an IterationTimer around every step: warm-up iterations run first and are left out of the
statistics, the first iteration's time is kept apart, data time is measured apart from compute,
peak memory is reset when the measured window opens. With --target-ap the run evaluates every
--eval-period iterations and stops at the target; evaluation is paused out of the step times
and counted in time_to_accuracy_s (MLPerf style: the wall time from start to the target).
--seeds N trains N runs (SEED, SEED + 1, ...), each evaluated at its end and recorded with its
seed and a command that repeats it; the report's accuracy table gives their mean and spread.
"""

from __future__ import annotations

import argparse
import copy
import logging

from benchmark.commands.infer import accuracy
from benchmark.errors import UsageError
from benchmark.flops import run_flop_fields
from benchmark.launch import EXIT, execute
from benchmark.measure import PausableClock, RepeatedTimers, reduce_across_ranks, summarize
from benchmark.workload.args import add_run_arguments
from benchmark.workload.build import Workload
from benchmark.workload.lookup import weights_id
from rcnn.checkpoint import save_checkpoint
from rcnn.engine.coco_eval import default_evaluator
from rcnn.engine.precision_check import ConvDtypeProbe
from rcnn.engine.prefetch import DATA_TIME_COVERS, prefetch_to_device
from rcnn.engine.run import build_training, start_session
from rcnn.engine.trainer import StepResult, Trainer, TrainHooks
from rcnn.layers import kernels_used, preflight
from rcnn.utils import comm

logger = logging.getLogger("rcnn.bench")
OPTIONS = ("target_ap", "eval_period", "save_ckpt", "seeds")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="measure training of a model config (one record)")
    p.add_argument(
        "--target-ap",
        type=float,
        help="stop once bbox AP reaches this (0..1); records time_to_accuracy_s",
    )
    p.add_argument(
        "--eval-period",
        type=int,
        help="evaluate every N iterations (default: never; with --seeds: at the end)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        help="train N runs, seeds SEED .. SEED+N-1 (SEED from the overrides, else 0), "
        "each evaluated and recorded",
    )
    p.add_argument("--save-ckpt", metavar="PATH", help="save the trained weights to PATH")
    add_run_arguments(p, "train")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.seeds is None:
        return execute("train", args, measure, OPTIONS, _eval_overrides(args), check=_check)
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    worst = 0
    for one in seed_runs(args):
        code = execute("train", one, measure, OPTIONS, _eval_overrides(one), check=_check)
        if code in (EXIT["user"], EXIT["interrupted"]):  # every other seed would end the same
            return code
        worst = worst or code
    return worst


def seed_runs(args: argparse.Namespace) -> list[argparse.Namespace]:
    """The runs of --seeds N: the same arguments, each with `SEED k` as its last override (so
    its record's command repeats that one run) and an evaluation at its end."""
    opts, base = list(args.opts), 0
    if "SEED" in opts[::2]:
        at = opts[::2].index("SEED") * 2
        if at + 1 >= len(opts) or not opts[at + 1].isdigit():
            raise UsageError("SEED needs a whole number with --seeds")
        base = int(opts[at + 1])
        del opts[at : at + 2]
    runs = []
    for seed in range(base, base + args.seeds):
        one = copy.copy(args)
        one.seeds, one.run_id, one.opts = None, None, [*opts, "SEED", str(seed)]
        if one.eval_period is None and one.iters is not None:
            one.eval_period = one.warmup + one.iters * one.repeats
        runs.append(one)
    return runs


def _eval_overrides(args: argparse.Namespace) -> list[str]:
    """Config overrides of --eval-period and --target-ap (TARGET_BBOX_AP 0: never stops)."""
    if args.target_ap is None and not args.eval_period:
        return []
    return [
        "SOLVER.TARGET_BBOX_AP",
        str(args.target_ap or 0.0),
        "SOLVER.TEST_PERIOD",
        str(args.eval_period or 0),
    ]


def _check(args: argparse.Namespace) -> None:
    if args.iters is None:
        raise UsageError("--iters must be given for training")
    if args.target_ap is not None and (not args.eval_period or args.repeats != 1):
        raise UsageError("--target-ap needs --eval-period N (N > 0) and a single repeat")


def measure(workload: Workload, args: argparse.Namespace) -> dict | None:
    session = start_session(workload.cfg)
    adapter, index = session.adapter, session.index
    training = build_training(session, resume=False, checkpoints=False)
    clock = PausableClock()
    timers = RepeatedTimers(
        lambda: adapter.synchronize(index),
        args.warmup,
        args.iters,
        args.repeats,
        clock=clock,
        sync=args.sync,
    )
    last_loss: list[float] = []

    def time_step(trainer: Trainer, step: StepResult) -> bool:
        timers.step_end(step.images)
        last_loss[:] = [sum(step.losses.values())]
        if timers.warmup_done:
            adapter.reset_peak_memory(index)  # the measured window's peak, not the warm-up's
        return False

    hooks = TrainHooks(after_step=[time_step])
    if workload.cfg.SOLVER.TEST_PERIOD > 0:
        hooks.after_step.append(clock.excluding(training.eval_hook))
    if args.warmup == 0:
        adapter.reset_peak_memory(index)
    total = args.warmup + args.iters * args.repeats
    with ConvDtypeProbe(training.trainer.model) as probe:
        # the copy to the card happens inside the timed wait for each batch: data time
        batches = prefetch_to_device(training.data_loader, adapter, index)
        training.trainer.fit(timers.iterate(batches), 0, total, hooks)

    windows = [reduce_across_ranks(w) for w in timers.windows()]
    peaks = comm.all_gather_objects(adapter.peak_memory_mb(index))
    if args.save_ckpt and comm.is_main_process():
        path = save_checkpoint(
            args.save_ckpt,
            training.trainer.model,
            iteration=training.trainer.iteration,
            config=workload.cfg,
        )
        logger.info("saved the trained weights to %s", path)
    if not comm.is_main_process():
        return None
    hook = training.eval_hook
    fields = summarize(windows)
    fields.update(
        dataset=workload.data.record(len(training.data_loader.dataset)),
        peak_mem_mb=max((p for p in peaks if p is not None), default=None),
        peak_mem_kind=adapter.peak_memory_kind,
        final_loss=last_loss[0] if last_loss else None,
        ops=kernels_used() or preflight(adapter.torch_device(index)),
        accuracy=accuracy(hook.scores) if hook.scores else None,
        time_to_accuracy_s=hook.time_to_accuracy_s,
        evaluator=default_evaluator() if hook.history else None,
        eval_s=hook.eval_s if hook.history else None,
        mask_paste=workload.cfg.TEST.MASK_PASTE
        if hook.history and workload.cfg.MODEL.MASK_ON
        else None,
        compute_dtype=probe.dtype_name,
        data_time_covers=DATA_TIME_COVERS,
        weights=workload.cfg.MODEL.WEIGHT or "random",
        weights_id=weights_id(workload.cfg.MODEL.WEIGHT),
    )
    # counted after the window, on a copy of the model: no count is ever timed
    fields.update(run_flop_fields(training.trainer.model, workload, fields, args, adapter, index))
    why = probe.mismatch(session.precision, adapter.name)
    if why:  # measured, but not at the precision asked for: the cell fails and says why
        fields.update(status="failed", error=why)
    return fields
