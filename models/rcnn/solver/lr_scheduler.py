"""maskrcnn-benchmark's schedule: linear or constant warm-up, then step decay at SOLVER.STEPS."""

from __future__ import annotations

from bisect import bisect_right

import torch


class WarmupMultiStepLR(torch.optim.lr_scheduler.LRScheduler):
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        milestones: list[int] | tuple[int, ...],
        gamma: float = 0.1,
        warmup_factor: float = 1.0 / 3,
        warmup_iters: int = 500,
        warmup_method: str = "linear",
        last_epoch: int = -1,
    ):
        if list(milestones) != sorted(milestones):
            raise ValueError(f"SOLVER.STEPS must be increasing, got {milestones}")
        if warmup_method not in ("constant", "linear"):
            raise ValueError(
                f"SOLVER.WARMUP_METHOD must be constant or linear, got {warmup_method}"
            )
        self.milestones = list(milestones)
        self.gamma = gamma
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        super().__init__(optimizer, last_epoch)

    def _factor(self, it: int) -> float:
        warmup = 1.0
        if it < self.warmup_iters:
            if self.warmup_method == "constant":
                warmup = self.warmup_factor
            else:
                alpha = it / self.warmup_iters
                warmup = self.warmup_factor * (1 - alpha) + alpha
        return warmup * self.gamma ** bisect_right(self.milestones, it)

    def get_lr(self) -> list[float]:
        return [base * self._factor(self.last_epoch) for base in self.base_lrs]
