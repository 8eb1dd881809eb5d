"""Balanced L1 loss against the Libra R-CNN paper's formulas (eq. 8-9), written out here."""

import math

import pytest
import torch

from rcnn.layers.balanced_l1_loss import balanced_l1_loss

ALPHA, GAMMA = 0.5, 1.5
B = math.e ** (GAMMA / ALPHA) - 1  # the paper's alpha * ln(b + 1) = gamma


def paper_value(x: float, alpha: float = ALPHA, gamma: float = GAMMA) -> float:
    """Paper eq. 9 (beta = 1), with C from continuity at |x| = 1."""
    b = math.e ** (gamma / alpha) - 1
    x = abs(x)
    if x < 1:
        return alpha / b * (b * x + 1) * math.log(b * x + 1) - alpha * x
    return gamma * x + gamma / b - alpha


def paper_gradient(x: float, beta: float = 1.0) -> float:
    """Paper eq. 8 with |x| measured in units of beta: alpha ln(b|x|/beta + 1), else gamma."""
    magnitude = ALPHA * math.log(B * abs(x) / beta + 1) if abs(x) < beta else GAMMA
    return math.copysign(magnitude, x)


def loss_and_grad(x: float, beta: float = 1.0) -> tuple[float, float]:
    pred = torch.tensor([x], dtype=torch.float64, requires_grad=True)
    loss = balanced_l1_loss(
        pred,
        torch.zeros(1, dtype=torch.float64),
        beta=beta,
        alpha=ALPHA,
        gamma=GAMMA,
        reduction="sum",
    )
    loss.backward()
    return loss.item(), pred.grad.item()


POINTS = [-2.5, -1.0, -0.3, -0.01, 0.0, 0.001, 0.2, 0.5, 0.999, 1.0, 1.7, 10.0]


@pytest.mark.parametrize("x", POINTS)
def test_values_and_gradients_match_the_paper(x):
    value, grad = loss_and_grad(x)
    assert value == pytest.approx(paper_value(x), rel=1e-12, abs=1e-14)
    assert grad == pytest.approx(paper_gradient(x), rel=1e-12, abs=1e-14)


def test_constants_of_the_default_parameters():
    # b = e^3 - 1 and C = gamma / b - alpha (beta 1): the continuity constant, by hand.
    assert math.isclose(B, 19.085536923187668)
    c = GAMMA / B - ALPHA
    assert paper_value(2.0) == pytest.approx(GAMMA * 2.0 + c)
    value_at_one, _ = loss_and_grad(1.0)
    assert value_at_one == pytest.approx(GAMMA + c)
    assert value_at_one == pytest.approx(1.0785935447, rel=1e-9)


@pytest.mark.parametrize("beta", [1.0, 1.0 / 9, 0.5, 2.0])
def test_value_and_gradient_continuous_at_beta(beta):
    eps = 1e-7
    below, grad_below = loss_and_grad(beta - eps, beta)
    above, grad_above = loss_and_grad(beta + eps, beta)
    assert above - below == pytest.approx(2 * eps * GAMMA, rel=1e-4)
    assert grad_below == pytest.approx(GAMMA, rel=1e-6)
    assert grad_above == GAMMA
    for x in (0.1 * beta, 0.6 * beta, -0.9 * beta, 3 * beta):
        assert loss_and_grad(x, beta)[1] == pytest.approx(paper_gradient(x, beta), rel=1e-12)


def test_other_beta_is_the_paper_function_rescaled():
    x = torch.tensor([0.05, 0.3, 0.8, 4.0], dtype=torch.float64)
    for beta in (0.25, 3.0):
        loss = balanced_l1_loss(x, torch.zeros_like(x), beta=beta, reduction="none")
        expected = [beta * paper_value(v / beta) for v in x.tolist()]
        torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64))


def test_alpha_gamma_from_arguments():
    value, _ = loss_and_grad(0.4)
    pred = torch.tensor([0.4], dtype=torch.float64)
    other = balanced_l1_loss(pred, torch.zeros(1, dtype=torch.float64), alpha=1.0, gamma=2.0)
    assert other.item() == pytest.approx(paper_value(0.4, alpha=1.0, gamma=2.0))
    assert other.item() != pytest.approx(value)


def test_reductions_and_target_difference():
    pred = torch.tensor([[1.5, 0.2], [-0.4, 3.0]])
    target = torch.tensor([[0.5, 0.2], [0.1, 1.0]])
    none = balanced_l1_loss(pred, target, reduction="none")
    expected = torch.tensor([[paper_value(1.0), 0.0], [paper_value(0.5), paper_value(2.0)]])
    torch.testing.assert_close(none, expected)
    torch.testing.assert_close(balanced_l1_loss(pred, target, reduction="sum"), expected.sum())
    torch.testing.assert_close(balanced_l1_loss(pred, target), expected.mean())


def test_bad_arguments_are_rejected():
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="reduction"):
        balanced_l1_loss(x, x, reduction="avg")
    with pytest.raises(ValueError, match="beta"):
        balanced_l1_loss(x, x, beta=0.0)
