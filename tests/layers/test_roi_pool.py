"""Native RoIPool against torchvision's kernel, including which cell takes the gradient."""

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from test_roi_align import HALF_TOLERANCE, random_rois, run_with_grad

from rcnn.layers import ROIPool, native, roi_pool

pool_cases = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31 - 1),
        "images": st.integers(1, 3),
        "channels": st.integers(1, 4),
        "height": st.integers(1, 14),
        "width": st.integers(1, 14),
        "count": st.integers(0, 12),
        "output_size": st.integers(1, 4) | st.tuples(st.integers(1, 4), st.integers(1, 4)),
        "scale": st.sampled_from([1.0, 0.5, 0.25, 0.125, 1 / 3]),
        "levels": st.sampled_from([0, 3]),
    }
)


@settings(max_examples=120, deadline=None)
@given(pool_cases)
def test_native_roi_pool_matches_torchvision(case):
    gen = torch.Generator().manual_seed(case["seed"])
    shape = (case["images"], case["channels"], case["height"], case["width"])
    features = torch.randn(shape, generator=gen)
    if case["levels"]:
        # Few distinct values: ties inside bins decide which cell receives the gradient.
        features = torch.floor(features * case["levels"])
    rois = random_rois(
        gen, case["count"], case["images"], case["height"], case["width"], case["scale"]
    )
    args = (case["output_size"], case["scale"])
    out, grad = run_with_grad(native.roi_pool, features, rois, case["seed"], *args)
    want_out, want_grad = run_with_grad(
        torchvision.ops.roi_pool, features, rois, case["seed"], *args
    )
    assert torch.equal(out, want_out)
    torch.testing.assert_close(grad, want_grad, rtol=0, atol=1e-4)


def test_roi_pool_known_values_and_tie_gradient():
    # All-equal bin: torchvision keeps the first cell in row-major order, so does native.
    features = torch.ones(1, 1, 4, 4, requires_grad=True)
    out = native.roi_pool(features, torch.tensor([[0, 0.0, 0.0, 3.0, 3.0]]), 1, 1.0)
    out.sum().backward()
    assert out.item() == 1.0
    assert features.grad.flatten().tolist() == [1.0] + [0.0] * 15
    ramp = torch.arange(16.0).view(1, 1, 4, 4)
    pooled = native.roi_pool(ramp, torch.tensor([[0, 0.0, 0.0, 3.0, 3.0]]), 2, 1.0)
    assert pooled.flatten().tolist() == [5.0, 7.0, 13.0, 15.0]


def test_roi_off_the_map_pools_zero():
    features = torch.randn(1, 2, 6, 6)
    out = native.roi_pool(features, torch.tensor([[0, 20.0, 20.0, 30.0, 30.0]]), 2, 1.0)
    assert out.abs().sum().item() == 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_roi_pool(ops_mode, dtype):
    ops_mode("native")
    gen = torch.Generator().manual_seed(4)
    features = torch.randn(2, 8, 16, 16, generator=gen).to(dtype)
    rois = random_rois(gen, 20, 2, 16, 16, 0.5)
    got = ROIPool(3, 0.5)(features, rois)
    assert got.dtype == dtype
    want = torchvision.ops.roi_pool(features.float(), rois, 3, 0.5)
    tol = HALF_TOLERANCE[dtype]
    torch.testing.assert_close(got.float(), want, rtol=tol, atol=tol)
    assert torch.equal(got, roi_pool(features, rois, 3, 0.5))
