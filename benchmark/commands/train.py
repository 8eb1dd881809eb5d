"""`python -m benchmark train`: one measured training run of a model config, recorded.

The run is the library's own training (`rcnn.engine.run.build_training` and `Trainer.fit`),
timed by the timing contract (`benchmark.measure.TimedRun`). With --target-ap the run evaluates
every --eval-period iterations and stops at the target; evaluation is paused out of the step
times and counted in time_to_accuracy_s (MLPerf style: the wall time from start to the target).
--seeds N trains N runs (SEED, SEED + 1, ...), each evaluated at its end and recorded with its
seed and a command that repeats it; the report's accuracy table gives their mean and spread.
"""

from __future__ import annotations

import argparse
import copy
import logging

from benchmark.commands.ending import Run, record_fields
from benchmark.commands.infer import accuracy
from benchmark.errors import UsageError
from benchmark.launch import EXIT, execute
from benchmark.measure import TimedRun
from benchmark.workload.args import add_run_arguments
from benchmark.workload.build import Workload
from rcnn.checkpoint import save_checkpoint
from rcnn.engine.coco_eval import default_evaluator
from rcnn.engine.precision_check import ConvDtypeProbe
from rcnn.engine.run import build_training, start_session
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
    interconnect = comm.interconnect_probe(adapter, index)  # what a scaling number depends on
    run = TimedRun(
        adapter,
        index,
        args.warmup,
        args.iters,
        args.repeats,
        sync=args.sync,
        mode="train",
        # compiled before the window, where the backbone is compiled for them
        buckets=training.data_loader.collate_fn.buckets
        if session.compile_shapes == "static"
        else (),
    )
    evaluation = training.eval_hook if workload.cfg.SOLVER.TEST_PERIOD > 0 else None
    with ConvDtypeProbe(training.trainer.model) as probe:
        last_loss = run.fit(training.trainer, training.data_loader, evaluation)
    if args.save_ckpt and comm.is_main_process():
        path = save_checkpoint(
            args.save_ckpt,
            training.trainer.model,
            iteration=training.trainer.iteration,
            config=workload.cfg,
        )
        logger.info("saved the trained weights to %s", path)
    run.train_compute_only(training.trainer)
    timing = run.finish()
    if timing is None:
        return None
    hook = training.eval_hook
    data = (len(training.data_loader.dataset), workload.cfg.MODEL.WEIGHT)
    return record_fields(
        Run(workload, args, adapter, index),
        timing,
        training.trainer.model,
        probe,
        data,
        compile_shapes=session.compile_shapes,
        final_loss=last_loss[0] if last_loss else None,
        interconnect=interconnect,
        accuracy=accuracy(hook.scores) if hook.scores else None,
        time_to_accuracy_s=hook.time_to_accuracy_s,
        evaluator=default_evaluator() if hook.history else None,
        eval_s=hook.eval_s if hook.history else None,
        mask_paste=workload.cfg.TEST.MASK_PASTE
        if hook.history and workload.cfg.MODEL.MASK_ON
        else None,
    )
