"""`python -m benchmark train`: one measured training run of a model config, recorded.

The run is the library's own training (`rcnn.engine.run.build_training` and `Trainer.fit`),
timed by the timing contract (`benchmark.measure.TimedRun`). With --target-ap the run evaluates
every --eval-period iterations and stops at the target; evaluation is paused out of the step
times and counted in time_to_accuracy_s (MLPerf style: the wall time from start to the target).
"""

from __future__ import annotations

import argparse
import logging

from benchmark.commands.ending import Run, record_fields
from benchmark.errors import UsageError
from benchmark.launch import execute
from benchmark.measure import TimedRun
from benchmark.workload.args import add_run_arguments
from benchmark.workload.build import Workload
from rcnn.checkpoint import save_checkpoint
from rcnn.engine.precision_check import ConvDtypeProbe
from rcnn.engine.run import build_training, start_session
from rcnn.utils import comm

logger = logging.getLogger("rcnn.bench")
OPTIONS = ("target_ap", "eval_period", "save_ckpt")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="measure training of a model config (one record)")
    p.add_argument(
        "--target-ap",
        type=float,
        help="stop once bbox AP reaches this (0..1); records time_to_accuracy_s",
    )
    p.add_argument("--eval-period", type=int, help="evaluate every N iterations (--target-ap)")
    p.add_argument("--save-ckpt", metavar="PATH", help="save the trained weights to PATH")
    add_run_arguments(p, "train")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    extra: list[str] = []
    if args.target_ap is not None:
        extra = [
            "SOLVER.TARGET_BBOX_AP",
            str(args.target_ap),
            "SOLVER.TEST_PERIOD",
            str(args.eval_period or 0),
        ]
    return execute("train", args, measure, OPTIONS, extra, check=_check)


def _check(args: argparse.Namespace) -> None:
    if args.iters is None:
        raise UsageError("--iters must be given for training")
    if args.target_ap is not None and (not args.eval_period or args.repeats != 1):
        raise UsageError("--target-ap needs --eval-period N (N > 0) and a single repeat")


def measure(workload: Workload, args: argparse.Namespace) -> dict | None:
    session = start_session(workload.cfg)
    adapter, index = session.adapter, session.index
    training = build_training(session, resume=False, checkpoints=False)
    run = TimedRun(
        adapter, index, args.warmup, args.iters, args.repeats, sync=args.sync, mode="train"
    )
    evaluation = training.eval_hook if args.target_ap is not None else None
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
        final_loss=last_loss[0] if last_loss else None,
        accuracy={"bbox_ap": hook.history[-1][1]} if hook.history else None,
        time_to_accuracy_s=hook.time_to_accuracy_s,
    )
