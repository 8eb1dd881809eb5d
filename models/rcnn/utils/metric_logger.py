"""Smoothed training metrics printed as maskrcnn-benchmark prints them: median (global avg)."""

from __future__ import annotations

from collections import defaultdict, deque

import torch


class SmoothedValue:
    """A window of recent values for the median, and running totals for the global average."""

    def __init__(self, window_size: int = 20):
        self.window: deque[float] = deque(maxlen=window_size)
        self.total = 0.0
        self.count = 0

    def update(self, value: float) -> None:
        self.window.append(value)
        self.total += value
        self.count += 1

    @property
    def median(self) -> float:
        return float(torch.tensor(list(self.window)).median()) if self.window else 0.0

    @property
    def avg(self) -> float:
        return sum(self.window) / len(self.window) if self.window else 0.0

    @property
    def global_avg(self) -> float:
        return self.total / max(self.count, 1)

    @property
    def latest(self) -> float:
        return self.window[-1] if self.window else 0.0


class MetricLogger:
    def __init__(self, delimiter: str = "  "):
        self.meters: dict[str, SmoothedValue] = defaultdict(SmoothedValue)
        self.delimiter = delimiter

    def update(self, **values: float | torch.Tensor) -> None:
        for name, value in values.items():
            self.meters[name].update(float(value))

    def __getitem__(self, name: str) -> SmoothedValue:
        return self.meters[name]

    def __str__(self) -> str:
        return self.delimiter.join(
            f"{name}: {m.median:.4f} ({m.global_avg:.4f})" for name, m in self.meters.items()
        )
