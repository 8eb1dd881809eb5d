"""Balanced Feature Pyramid: shapes, the gather/average/scatter arithmetic by hand, non-local."""

import pytest
import torch

from rcnn.modeling.backbone.bfp import BalancedFeaturePyramid, NonLocal2d

# P2..P6 of a 128x160 input with SIZE_DIVISIBILITY 32 (P6 = stride-2 1x1 max pool of P5), plus
# an odd-sized pyramid like an unpadded image gives.
PYRAMIDS = [
    [(32, 40), (16, 20), (8, 10), (4, 5), (2, 3)],
    [(25, 38), (13, 19), (7, 10), (4, 5), (2, 3)],
]


def pyramid(sizes, channels=4, batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, channels, h, w, generator=generator) for h, w in sizes]


@pytest.mark.parametrize("sizes", PYRAMIDS)
@pytest.mark.parametrize("refine_type", ["non_local", "conv", "none"])
def test_output_shapes_equal_input_shapes(sizes, refine_type):
    bfp = BalancedFeaturePyramid(4, num_levels=5, refine_level=2, refine_type=refine_type)
    features = pyramid(sizes)
    outputs = bfp(features)
    assert [o.shape for o in outputs] == [f.shape for f in features]


def test_none_is_identity_plus_average_by_hand():
    # One channel, three levels 4x4 / 2x2 / 1x1, balanced at the middle one.
    p0 = torch.tensor(
        [[1.0, 2.0, 0.0, 0.0], [3.0, 4.0, 0.0, -1.0], [5.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 6.0]]
    )
    p1 = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    p2 = torch.tensor([[6.0]])
    bfp = BalancedFeaturePyramid(1, num_levels=3, refine_level=1, refine_type="none")
    out = bfp([p[None, None] for p in (p0, p1, p2)])
    # gather: p0 -> max of each 2x2 block [[4, 0], [5, 6]]; p1 as is; p2 -> 6 everywhere.
    average = torch.tensor([[(4 + 1 + 6) / 3, (0 - 2 + 6) / 3], [(5 + 0 + 6) / 3, (6 + 3 + 6) / 3]])
    # scatter: p0 gets each average copied over its 2x2 block, p2 the max of the average.
    torch.testing.assert_close(
        out[0][0, 0], p0 + average.repeat_interleave(2, 0).repeat_interleave(2, 1)
    )
    torch.testing.assert_close(out[1][0, 0], p1 + average)
    torch.testing.assert_close(out[2][0, 0], p2 + 5.0)


def test_none_on_constant_levels_adds_the_mean_of_the_constants():
    sizes = PYRAMIDS[1]
    constants = [1.0, -2.0, 4.0, 0.5, 7.0]
    features = [torch.full((1, 3, h, w), c) for (h, w), c in zip(sizes, constants, strict=True)]
    outputs = BalancedFeaturePyramid(3, 5, 2, "none")(features)
    mean = sum(constants) / 5
    for out, c in zip(outputs, constants, strict=True):
        torch.testing.assert_close(out, torch.full_like(out, c + mean))


def test_zero_initialised_non_local_is_identity():
    # conv_out starts at zero (the non-local paper's identity start), so the block is x -> x.
    block = NonLocal2d(4)
    x = torch.randn(2, 4, 5, 6)
    torch.testing.assert_close(block(x), x)
    features = pyramid(PYRAMIDS[0])
    with_non_local = BalancedFeaturePyramid(4, 5, 2, "non_local")(features)
    plain = BalancedFeaturePyramid(4, 5, 2, "none")(features)
    for a, b in zip(with_non_local, plain, strict=True):
        torch.testing.assert_close(a, b)


def test_non_local_matches_the_per_position_formula():
    torch.manual_seed(0)
    block = NonLocal2d(3)
    torch.nn.init.normal_(block.conv_out.weight)
    x = torch.randn(1, 3, 2, 3)
    flat = x[0].flatten(1)  # [c, positions]

    def conv1x1(conv, v):
        return conv.weight[:, :, 0, 0] @ v + conv.bias[:, None]

    theta, phi, g = (conv1x1(c, flat) for c in (block.theta, block.phi, block.g))
    expected = torch.empty_like(flat)
    for i in range(flat.shape[1]):
        weights = torch.softmax(theta[:, i] @ phi, dim=0)  # f(x_i, x_j), normalised over j
        y_i = (g * weights).sum(dim=1)
        expected[:, i] = flat[:, i] + block.conv_out.weight[:, :, 0, 0] @ y_i + block.conv_out.bias
    torch.testing.assert_close(block(x)[0].flatten(1), expected)


@pytest.mark.parametrize("refine_type", ["non_local", "conv"])
def test_gradient_reaches_every_level_and_parameter(refine_type):
    torch.manual_seed(0)
    bfp = BalancedFeaturePyramid(4, 5, 2, refine_type)
    if refine_type == "non_local":
        torch.nn.init.normal_(bfp.refine.conv_out.weight, std=0.1)  # past the zero start
    features = [f.requires_grad_() for f in pyramid(PYRAMIDS[0])]
    weights = pyramid(PYRAMIDS[0], seed=1)  # a loss that is not flat in any direction
    sum((o * w).sum() for o, w in zip(bfp(features), weights, strict=True)).backward()
    for f in features:
        assert f.grad is not None and f.grad.abs().sum() > 0
    for name, p in bfp.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_zero_start_still_trains_the_output_conv():
    bfp = BalancedFeaturePyramid(4, 5, 2, "non_local")
    features = pyramid(PYRAMIDS[0])
    weights = pyramid(PYRAMIDS[0], seed=1)
    sum((o * w).sum() for o, w in zip(bfp(features), weights, strict=True)).backward()
    assert bfp.refine.conv_out.weight.grad.abs().sum() > 0


def test_parameter_names():
    assert sorted(BalancedFeaturePyramid(8, 5, 2, "non_local").state_dict()) == sorted(
        f"refine.{m}.{p}" for m in ("g", "theta", "phi", "conv_out") for p in ("weight", "bias")
    )
    assert sorted(BalancedFeaturePyramid(8, 5, 2, "conv").state_dict()) == [
        "refine.0.bias",
        "refine.0.weight",
    ]
    assert BalancedFeaturePyramid(8, 5, 2, "none").state_dict() == {}


def test_bad_arguments():
    with pytest.raises(ValueError, match="refine_level"):
        BalancedFeaturePyramid(8, 5, 5)
    with pytest.raises(ValueError, match="refine_type"):
        BalancedFeaturePyramid(8, 5, 2, "attention")
    with pytest.raises(ValueError, match="5 levels got 4"):
        BalancedFeaturePyramid(4, 5, 2, "none")(pyramid(PYRAMIDS[0][:4]))
