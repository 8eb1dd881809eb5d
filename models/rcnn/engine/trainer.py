"""The training loop: precision through the adapter, DDP-ready, NaN-safe, resumable.

One `Trainer.step` is one optimizer step on one batch. `Trainer.fit` runs steps over an
iteration-based loader, logs like maskrcnn-benchmark, checkpoints atomically, and calls hooks
(evaluation, a benchmark timer) without knowing what they do.
"""

from __future__ import annotations

import datetime
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from rcnn.device import DeviceAdapter
from rcnn.engine.prefetch import prefetch_to_device
from rcnn.utils import comm
from rcnn.utils.metric_logger import MetricLogger

logger = logging.getLogger("rcnn.trainer")


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf; training stops and the last good checkpoint stays."""

    def __init__(self, iteration: int, losses: dict[str, float]):
        self.iteration = iteration
        self.losses = losses
        terms = ", ".join(f"{k}={v:.4g}" for k, v in losses.items())
        super().__init__(f"non-finite loss at iteration {iteration}: {terms}")


@dataclass
class StepResult:
    iteration: int
    losses: dict[str, float] | None  # None: a step that did not read its losses (loss_period)
    images: int
    data_time: float
    step_time: float


@dataclass
class TrainHooks:
    """Callbacks; each gets the trainer. `after_step` may return True to stop training."""

    before_step: list[Callable[[Trainer], None]] = field(default_factory=list)
    after_step: list[Callable[[Trainer, StepResult], bool | None]] = field(default_factory=list)


class Trainer:
    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        adapter: DeviceAdapter,
        index: int,
        precision: str = "fp32",
        scaler: torch.amp.GradScaler | None = None,
        checkpointer: Callable[[str, int], None] | None = None,
        checkpoint_period: int = 0,
        log_period: int = 20,
    ):
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.adapter = adapter
        self.index = index
        self.device = adapter.torch_device(index)
        self.precision = precision
        self.scaler = scaler if scaler is not None else adapter.grad_scaler(precision)
        self.checkpointer = checkpointer
        self.checkpoint_period = checkpoint_period
        self.log_period = log_period
        self.iteration = 0
        # read (and all-reduce) the losses every N steps and at the last: each read is a host
        # sync, so N > 1 lets the host run ahead of the card between log periods
        self.loss_period = 1
        self.meters = MetricLogger()

    def step(self, images, targets, read: bool = True) -> dict[str, float] | None:
        """Forward, backward and update on one batch. With `read`, the losses come back to
        the host and a non-finite one raises NonFiniteLossError before updating; without it
        the step makes no host read and returns None."""
        self.model.train()
        images = images.to(self.device)
        targets = [t.to(self.device) for t in targets]
        with self.adapter.autocast(self.precision):
            loss_dict = self.model(images, targets)
        total = sum(loss_dict.values())
        logged = self._read_losses(loss_dict) if read else None
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return logged

    def _read_losses(self, loss_dict: dict[str, torch.Tensor]) -> dict[str, float]:
        reduced = comm.reduce_loss_dict(loss_dict)
        stacked = torch.stack([v.detach().float() for v in reduced.values()])
        # The one host sync of a step: to log, and to stop on NaN before the weights change.
        logged = dict(zip(reduced, stacked.tolist(), strict=True))
        if not all(math.isfinite(v) for v in logged.values()):
            raise NonFiniteLossError(self.iteration + 1, logged)
        return logged

    def fit(
        self,
        data_loader: Iterable,
        start_iter: int,
        max_iter: int,
        hooks: TrainHooks | None = None,
        prefetch: bool = False,
    ) -> None:
        """Train to `max_iter`. With `prefetch`, batches are copied to the card one ahead
        (pinned, non-blocking); a timer that must count the copy as data time wraps the loader
        in `prefetch_to_device` itself, inside the timer, and leaves this False."""
        hooks = hooks or TrainHooks()
        if prefetch:
            data_loader = prefetch_to_device(data_loader, self.adapter, self.index)
        self.iteration = start_iter
        show_bar = comm.is_main_process() and sys.stderr.isatty()
        bar = tqdm(total=max_iter, initial=start_iter, desc="train", disable=not show_bar)
        start = end = time.perf_counter()
        for images, targets, _ids in data_loader:
            if self.iteration >= max_iter:
                break
            data_time = time.perf_counter() - end
            for hook in hooks.before_step:
                hook(self)
            done = self.iteration + 1
            losses = self.step(
                images, targets, read=done % self.loss_period == 0 or done == max_iter
            )
            self.iteration = done
            step_time = time.perf_counter() - end
            end = time.perf_counter()
            if losses is not None:
                self.meters.update(loss=sum(losses.values()), **losses)
            self.meters.update(time=step_time, data=data_time)
            bar.update(1)
            self._log(max_iter, start)
            if (
                self.checkpointer
                and self.checkpoint_period
                and (self.iteration % self.checkpoint_period == 0)
            ):
                self.checkpointer(f"model_{self.iteration:07d}", self.iteration)
            result = StepResult(
                self.iteration, losses, len(images.image_sizes), data_time, step_time
            )
            if any([hook(self, result) for hook in hooks.after_step]):
                logger.info("stopping at iteration %d: a hook asked to stop", self.iteration)
                break
        bar.close()
        if self.checkpointer:
            self.checkpointer("model_final", self.iteration)
        total = time.perf_counter() - start
        logger.info(
            "Total training time: %s (%.4f s / it)",
            datetime.timedelta(seconds=int(total)),
            total / max(self.iteration - start_iter, 1),
        )

    def _log(self, max_iter: int, start: float) -> None:
        it = self.iteration
        if it % self.log_period and it != max_iter:
            return
        eta = datetime.timedelta(seconds=int(self.meters["time"].global_avg * (max_iter - it)))
        peak = self.adapter.peak_memory_mb(self.index)
        logger.info(
            "eta: %s  iter: %d  %s  lr: %.6f  max mem: %s",
            eta,
            it,
            self.meters,
            self.optimizer.param_groups[0]["lr"],
            f"{peak:.0f}" if peak is not None else "n/a",
        )
