"""Builders for the optimizer and the LR schedule: the only readers of SOLVER.* keys."""

from __future__ import annotations

import torch

from .lr_scheduler import WarmupMultiStepLR


def make_optimizer(cfg, model: torch.nn.Module) -> torch.optim.SGD:
    """SGD with momentum; biases get BIAS_LR_FACTOR x lr and WEIGHT_DECAY_BIAS, as in mrcnn."""
    s = cfg.SOLVER
    groups = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lr, decay = s.BASE_LR, s.WEIGHT_DECAY
        if name.endswith("bias"):
            lr, decay = s.BASE_LR * s.BIAS_LR_FACTOR, s.WEIGHT_DECAY_BIAS
        groups.append({"params": [param], "lr": lr, "weight_decay": decay})
    return torch.optim.SGD(groups, lr=s.BASE_LR, momentum=s.MOMENTUM)


def make_lr_scheduler(cfg, optimizer: torch.optim.Optimizer) -> WarmupMultiStepLR:
    s = cfg.SOLVER
    return WarmupMultiStepLR(
        optimizer,
        s.STEPS,
        s.GAMMA,
        warmup_factor=s.WARMUP_FACTOR,
        warmup_iters=s.WARMUP_ITERS,
        warmup_method=s.WARMUP_METHOD,
    )
