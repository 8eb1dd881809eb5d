"""`python -m benchmark overhead`: the timed loop's own cost, as a share of a training step.

The loop a `train` run measures with (TimedRun: timers, syncs, conduct counting; the trainer's
hooks, loss reads and logging; `finish`, which turns the window into the record's fields) runs
around a model that does nothing, on batches of the config's own loader kept in memory (so no
data I/O). Its time per iteration, which still holds the null model's one-parameter step and
so bounds the overhead from above, is set against the real model's step on the same batches.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import torch

from benchmark.measure import SYNC_POLICIES, TimedRun
from benchmark.workload.args import SIZE_HELP, format_size, parse_size
from benchmark.workload.build import build_workload
from rcnn.engine.run import build_training, start_session
from rcnn.engine.trainer import Trainer

KEPT_BATCHES = 2  # the loader's first batches, cycled by both loops


class NullDetector(torch.nn.Module):
    """A detector that does nothing: one parameter, one loss, no work on the images."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def forward(self, images, targets) -> dict[str, torch.Tensor]:
        return {"loss_null": self.weight * 1.0}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "overhead", help="the timed loop's own time per iteration, as a share of a step"
    )
    p.add_argument("--model", default="faster_rcnn_R_18_FPN_quick", help="config NAME or .yaml")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=2, help="images per step (default 2)")
    p.add_argument("--size", type=parse_size, help=SIZE_HELP + "; overrides INPUT.*")
    p.add_argument("--iters", type=int, default=200, help="null-model iterations timed")
    p.add_argument("--steps", type=int, default=5, help="real training steps timed")
    p.add_argument("--warmup", type=int, default=2, help="iterations before each window")
    p.add_argument("--sync", choices=SYNC_POLICIES, default="iteration")
    p.set_defaults(func=run)


def _workload_args(args: argparse.Namespace, results: Path) -> argparse.Namespace:
    """The `train` arguments the loop's config and loader are built from."""
    return argparse.Namespace(
        model=args.model,
        device=args.device,
        precision="fp32",
        compile=False,
        channels_last=None,
        nodes=1,
        batch=args.batch,
        size=args.size,
        data="synthetic",
        iters=args.steps,
        warmup=args.warmup,
        repeats=1,
        ckpt=None,
        results=str(results),
        opts=[],
    )


def timed_loop(trainer: Trainer, batches: list, args: argparse.Namespace, iters: int) -> float:
    """Seconds per measured iteration of `train`'s timed loop around `trainer`: the window's
    mean step time plus `finish` (once per run) spread over the window's iterations."""
    run = TimedRun(trainer.adapter, trainer.index, args.warmup, iters, sync=args.sync, mode="train")
    run.fit(trainer, itertools.cycle(batches))
    start = time.perf_counter()
    timing = run.finish()
    finish = time.perf_counter() - start
    if timing is None or timing["measured_iters"] != iters:
        raise RuntimeError(f"the overhead loop measured {timing and timing['measured_iters']}")
    return timing["step_time_ms"]["mean"] / 1e3 + finish / iters


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="rcnn-overhead-") as tmp:
        workload = build_workload("train", _workload_args(args, Path(tmp)), 1, Path(tmp) / "run")
        session = start_session(workload.cfg)
        training = build_training(session, resume=False, checkpoints=False)
        batches = list(itertools.islice(training.data_loader, KEPT_BATCHES))
        real = training.trainer
        null = NullDetector().to(session.device)
        optimizer = torch.optim.SGD(null.parameters(), lr=0.0)
        trainer = Trainer(
            null,
            optimizer,
            torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0),
            session.adapter,
            session.index,
            log_period=real.log_period,
        )
        loop = timed_loop(trainer, batches, args, args.iters)
        step = timed_loop(real, batches, args, args.steps)
    images = batches[0][0].tensors.shape
    size = format_size(args.size) if args.size else "the config's sizes"
    print(
        f"harness overhead: {workload.model} at {size} (batches {images[-2]}x{images[-1]}), "
        f"batch {args.batch}, {session.adapter.name}, sync {args.sync}\n"
        f"  timed loop around a null model: {loop * 1e3:.3f} ms/iteration ({args.iters} iters)\n"
        f"  training step of the model:     {step * 1e3:.3f} ms ({args.steps} steps)\n"
        f"  overhead share of a step:       {100 * loop / step:.3f}%"
    )
    return 0
