"""smooth_l1_loss as maskrcnn-benchmark defines it (beta 1/9, mean or sum)."""

import torch
import torch.nn.functional as F

from rcnn.layers import smooth_l1_loss


def test_values_on_both_sides_of_beta():
    pred = torch.tensor([0.0, 0.05, -1.0, 2.0])
    target = torch.zeros(4)
    per_element = [0.0, 0.5 * 0.05**2 * 9, 1.0 - 0.5 / 9, 2.0 - 0.5 / 9]
    total = smooth_l1_loss(pred, target, size_average=False)
    torch.testing.assert_close(total, torch.tensor(sum(per_element)))
    torch.testing.assert_close(smooth_l1_loss(pred, target), torch.tensor(sum(per_element) / 4))


def test_agrees_with_torch_for_other_betas():
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(50, 4, generator=gen), torch.randn(50, 4, generator=gen)
    for beta in (1.0 / 9, 0.5, 1.0):
        want = F.smooth_l1_loss(pred, target, beta=beta, reduction="sum")
        torch.testing.assert_close(smooth_l1_loss(pred, target, beta, size_average=False), want)


def test_beta_zero_is_l1_with_finite_gradient():
    pred = torch.tensor([0.5, -2.0], requires_grad=True)
    loss = smooth_l1_loss(pred, torch.zeros(2), beta=0.0, size_average=False)
    loss.backward()
    assert loss.item() == 2.5
    assert pred.grad.tolist() == [1.0, -1.0]
