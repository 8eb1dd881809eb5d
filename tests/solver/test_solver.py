import pytest
import torch
from yacs.config import CfgNode

from rcnn.solver import WarmupMultiStepLR, make_lr_scheduler, make_optimizer


def _cfg(**solver):
    base = dict(
        BASE_LR=0.02,
        BIAS_LR_FACTOR=2,
        MOMENTUM=0.9,
        WEIGHT_DECAY=1e-4,
        WEIGHT_DECAY_BIAS=0.0,
        STEPS=(4, 8),
        GAMMA=0.1,
        WARMUP_FACTOR=1 / 3,
        WARMUP_ITERS=4,
        WARMUP_METHOD="linear",
    )
    base.update(solver)
    return CfgNode({"SOLVER": CfgNode(base)})


def test_bias_gets_double_lr_and_no_decay():
    model = torch.nn.Linear(3, 2)
    opt = make_optimizer(_cfg(), model)
    by_shape = {tuple(g["params"][0].shape): g for g in opt.param_groups}
    assert by_shape[(2, 3)]["lr"] == pytest.approx(0.02)
    assert by_shape[(2, 3)]["weight_decay"] == pytest.approx(1e-4)
    assert by_shape[(2,)]["lr"] == pytest.approx(0.04)
    assert by_shape[(2,)]["weight_decay"] == 0.0


def test_linear_warmup_then_steps():
    model = torch.nn.Linear(1, 1, bias=False)
    cfg = _cfg()
    opt = make_optimizer(cfg, model)
    sched = make_lr_scheduler(cfg, opt)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # warm-up factor goes 1/3 -> 1 linearly over 4 iterations, then x0.1 at 4 and 8
    expected = [0.02 * (1 / 3 * (1 - i / 4) + i / 4) for i in range(4)]
    expected += [0.002] * 4 + [0.0002] * 2
    assert lrs == pytest.approx(expected)


def test_bad_schedule_is_refused():
    opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="SOLVER.STEPS must be increasing"):
        WarmupMultiStepLR(opt, (8, 4))
    with pytest.raises(ValueError, match="WARMUP_METHOD"):
        WarmupMultiStepLR(opt, (4,), warmup_method="cosine")
