"""A real training process for engine tests (run directly or under torchrun).

It trains the quick config on a synthetic set through `rcnn.engine.run`, writes each step's
losses to a jsonl file (rank 0), and can kill itself with SIGKILL right after a checkpoint or
turn a weight into NaN before a step, to test resume and the NaN stop on real processes. Under
DDP each rank can save its parameters after the last step; RCNN_TEST_SKIP_ALLREDUCE=1 replaces
DDP's gradient all-reduce with a no-op, to prove the test comparing the ranks would see it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import QUICK, register  # noqa: E402

from rcnn.config import load_config  # noqa: E402
from rcnn.engine.run import start_session, train  # noqa: E402
from rcnn.engine.trainer import NonFiniteLossError, TrainHooks  # noqa: E402
from rcnn.utils import comm  # noqa: E402


def local_gradients_only(state, bucket):
    """A DDP comm hook that keeps each rank's own gradients: a broken all-reduce."""
    future = torch.futures.Future()
    future.set_result(bucket.buffer())
    return future


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--losses", required=True)
    p.add_argument("--kill-after", type=int, default=0, help="SIGKILL after this iteration")
    p.add_argument("--nan-at", type=int, default=0, help="poison a weight before this iteration")
    p.add_argument("--params", help="after the last step, each rank saves PARAMS.rank<N>.pt")
    p.add_argument("opts", nargs=argparse.REMAINDER)
    args = p.parse_args()
    torch.set_num_threads(1)  # identical math in every process, and 2 ranks fit on 2 cores
    register(Path(args.data))
    cfg = load_config(str(QUICK), args.opts)
    session = start_session(cfg)
    hooks = TrainHooks()

    def log_losses(trainer, step):
        if comm.is_main_process():
            with open(args.losses, "a") as f:
                f.write(json.dumps({"iteration": step.iteration, **step.losses}) + "\n")
        if args.kill_after and step.iteration == args.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def poison(trainer):
        if args.nan_at and trainer.iteration + 1 == args.nan_at:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))

    def save_params(trainer, step):
        if args.params and step.iteration == cfg.SOLVER.MAX_ITER:
            model = getattr(trainer.model, "module", trainer.model)
            params = {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}
            torch.save(params, f"{args.params}.rank{comm.get_rank()}.pt")

    def skip_allreduce(trainer):
        if os.environ.get("RCNN_TEST_SKIP_ALLREDUCE") == "1" and trainer.iteration == 0:
            trainer.model.register_comm_hook(None, local_gradients_only)

    hooks.after_step += [log_losses, save_params]
    hooks.before_step += [skip_allreduce, poison]
    try:
        train(session, resume=True, hooks=hooks)
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
