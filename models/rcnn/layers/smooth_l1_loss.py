"""Smooth L1 loss as maskrcnn-benchmark defines it for box regression."""

from __future__ import annotations

import torch
from torch import Tensor


def smooth_l1_loss(
    input: Tensor, target: Tensor, beta: float = 1.0 / 9, size_average: bool = True
) -> Tensor:
    """0.5 * d**2 / beta where |d| < beta, else |d| - 0.5 * beta; mean, or sum if not averaging."""
    diff = torch.abs(input - target)
    if beta <= 0:
        # Plain L1; the quadratic branch would divide by zero (and poison gradients).
        return diff.mean() if size_average else diff.sum()
    loss = torch.where(diff < beta, 0.5 * diff**2 / beta, diff - 0.5 * beta)
    return loss.mean() if size_average else loss.sum()
