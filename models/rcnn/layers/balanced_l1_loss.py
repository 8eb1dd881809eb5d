"""Balanced L1 loss (Libra R-CNN, Pang et al., CVPR 2019, eq. 8-9).

With x = pred - target and b = e^(gamma/alpha) - 1 (so that alpha * ln(b + 1) = gamma):

    |x| <  beta:  alpha/b * (b|x| + beta) * ln(b|x|/beta + 1) - alpha|x|
    |x| >= beta:  gamma|x| + beta * (gamma/b - alpha)

Its gradient is alpha * ln(b|x|/beta + 1) inside and gamma outside, so value and gradient are
continuous at |x| = beta for every beta. At beta = 1 (the paper, and every Libra config) this is
exactly the paper's formula; it is the paper's function rescaled, beta * L(x / beta), otherwise.
"""

from __future__ import annotations

import math

import torch

REDUCTIONS = ("none", "mean", "sum")


def balanced_l1_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    beta: float = 1.0,
    alpha: float = 0.5,
    gamma: float = 1.5,
    reduction: str = "mean",
) -> torch.Tensor:
    """Element-wise balanced L1 of `pred - target`, reduced by `reduction` (none, mean, sum)."""
    if beta <= 0 or alpha <= 0 or gamma <= 0:
        raise ValueError(
            f"balanced_l1_loss needs beta, alpha, gamma > 0, got {beta}, {alpha}, {gamma}"
        )
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction {reduction!r} is not one of {REDUCTIONS}")
    diff = (pred - target).abs()
    # alpha * ln(b + 1) = gamma makes the inner gradient reach gamma exactly at |x| = beta.
    b = math.expm1(gamma / alpha)
    inner = alpha / b * (b * diff + beta) * torch.log1p(b * diff / beta) - alpha * diff
    outer = gamma * diff + beta * (gamma / b - alpha)
    loss = torch.where(diff < beta, inner, outer)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
