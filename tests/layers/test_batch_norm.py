"""FrozenBatchNorm2d is an eval-mode BatchNorm2d with maskrcnn-benchmark's four buffers."""

import pytest
import torch
from torch import nn

from rcnn.layers import FrozenBatchNorm2d


def random_bn(channels: int, eps: float) -> nn.BatchNorm2d:
    gen = torch.Generator().manual_seed(channels)
    bn = nn.BatchNorm2d(channels, eps=eps).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.randn(channels, generator=gen))
        bn.bias.copy_(torch.randn(channels, generator=gen))
        bn.running_mean.copy_(torch.randn(channels, generator=gen))
        bn.running_var.copy_(torch.rand(channels, generator=gen) + 0.1)
    return bn


@pytest.mark.parametrize("eps", [0.0, 1e-5])
def test_equals_eval_batchnorm_with_the_same_statistics(eps):
    bn = random_bn(16, eps)
    frozen = FrozenBatchNorm2d(16, eps=eps)
    frozen.load_state_dict(bn.state_dict())  # carries num_batches_tracked, which is dropped
    x = torch.randn(2, 16, 5, 7, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(frozen(x), bn(x), rtol=1e-6, atol=1e-6)


def test_holds_exactly_the_four_checkpoint_buffers_and_trains_nothing():
    frozen = FrozenBatchNorm2d(8)
    assert list(frozen.state_dict()) == ["weight", "bias", "running_mean", "running_var"]
    assert list(frozen.parameters()) == []
    assert frozen.eps == 0.0


def test_numbers_and_half_precision():
    frozen = FrozenBatchNorm2d(2)
    frozen.weight.copy_(torch.tensor([2.0, 1.0]))
    frozen.bias.copy_(torch.tensor([0.5, -1.0]))
    frozen.running_mean.copy_(torch.tensor([1.0, 0.0]))
    frozen.running_var.copy_(torch.tensor([4.0, 0.25]))
    x = torch.tensor([3.0, 3.0]).view(1, 2, 1, 1)
    # (3 - 1) / 2 * 2 + 0.5 = 2.5 ; (3 - 0) / 0.5 * 1 - 1 = 5
    assert frozen(x).flatten().tolist() == [2.5, 5.0]
    out = frozen(x.half())
    assert out.dtype == torch.float16 and out.flatten().tolist() == [2.5, 5.0]
