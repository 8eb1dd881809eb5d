"""Native RoIAlign against torchvision's kernel: outputs within 1e-5, gradients within 1e-4."""

import warnings

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st

from rcnn.layers import ROIAlign, native, roi_align


def random_rois(gen, count, images, height, width, scale, zero_area=0.2) -> torch.Tensor:
    """[count, 5] rois in image coordinates; some zero-area, some partly or fully off the map."""
    img_h, img_w = height / scale, width / scale
    x1 = torch.rand(count, generator=gen) * (img_w * 1.4) - img_w * 0.2
    y1 = torch.rand(count, generator=gen) * (img_h * 1.4) - img_h * 0.2
    w = torch.rand(count, generator=gen) * img_w
    h = torch.rand(count, generator=gen) * img_h
    flat = torch.rand(count, generator=gen) < zero_area
    w, h = torch.where(flat, 0.0, w), torch.where(flat, 0.0, h)
    batch = torch.randint(0, images, (count,), generator=gen).float()
    return torch.stack((batch, x1, y1, x1 + w, y1 + h), dim=1)


def run_with_grad(fn, features, rois, upstream_seed, *args):
    features = features.detach().requires_grad_()
    out = fn(features, rois, *args)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(upstream_seed))
    (grad,) = torch.autograd.grad(out, features, upstream.to(out.dtype))
    return out.detach(), grad


align_cases = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31 - 1),
        "images": st.integers(1, 3),
        "channels": st.integers(1, 4),
        "height": st.integers(1, 14),
        "width": st.integers(1, 14),
        "count": st.integers(0, 12),
        "output_size": st.integers(1, 4) | st.tuples(st.integers(1, 4), st.integers(1, 4)),
        "scale": st.sampled_from([1.0, 0.5, 0.25, 0.125, 1 / 3]),
        "sampling_ratio": st.sampled_from([-1, 0, 1, 2, 3]),
        "aligned": st.booleans(),
    }
)


@settings(max_examples=120, deadline=None)
@given(align_cases)
def test_native_roi_align_matches_torchvision(case):
    gen = torch.Generator().manual_seed(case["seed"])
    shape = (case["images"], case["channels"], case["height"], case["width"])
    features = torch.randn(shape, generator=gen)
    rois = random_rois(
        gen, case["count"], case["images"], case["height"], case["width"], case["scale"]
    )
    args = (case["output_size"], case["scale"], case["sampling_ratio"], case["aligned"])
    out, grad = run_with_grad(native.roi_align, features, rois, case["seed"], *args)
    want_out, want_grad = run_with_grad(
        torchvision.ops.roi_align, features, rois, case["seed"], *args
    )
    assert out.shape == want_out.shape
    torch.testing.assert_close(out, want_out, rtol=0, atol=1e-5)
    torch.testing.assert_close(grad, want_grad, rtol=0, atol=1e-4)


def test_fpn_levels_with_many_grid_sizes():
    # Poolers run one roi_align per FPN level; adaptive sampling gives many grid sizes here.
    gen = torch.Generator().manual_seed(0)
    for level, scale in enumerate((1 / 4, 1 / 8, 1 / 16, 1 / 32)):
        features = torch.randn(2, 8, 96 >> level, 128 >> level, generator=gen)
        rois = random_rois(gen, 40, 2, 96 >> level, 128 >> level, scale, zero_area=0.1)
        for sampling_ratio in (0, 2):
            args = ((7, 7), scale, sampling_ratio, False)
            out, grad = run_with_grad(native.roi_align, features, rois, level, *args)
            want_out, want_grad = run_with_grad(
                torchvision.ops.roi_align, features, rois, level, *args
            )
            torch.testing.assert_close(out, want_out, rtol=0, atol=1e-5)
            torch.testing.assert_close(grad, want_grad, rtol=0, atol=1e-4)


@pytest.mark.parametrize("aligned", [False, True])
def test_adaptive_sampling_of_rois_past_the_map_edges(aligned):
    # Large rois reaching past every edge: grids up to 9 samples a side, whose taps the
    # native op merges per bin (clamped and unused samples included).
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(2, 5, 20, 26, generator=gen)
    corners = torch.rand(30, 4, generator=gen) * torch.tensor([60.0, 50, 60, 50]) - 15
    lo, hi = corners[:, :2].minimum(corners[:, 2:]), corners[:, :2].maximum(corners[:, 2:])
    rois = torch.cat([torch.randint(0, 2, (30, 1), generator=gen).float(), lo, hi], 1)
    args = ((5, 4), 1.0, 0, aligned)
    out, grad = run_with_grad(native.roi_align, features, rois, 1, *args)
    want_out, want_grad = run_with_grad(torchvision.ops.roi_align, features, rois, 1, *args)
    torch.testing.assert_close(out, want_out, rtol=0, atol=1e-5)
    torch.testing.assert_close(grad, want_grad, rtol=0, atol=1e-4)


def test_roi_align_known_values():
    # A linear ramp is reproduced exactly by bilinear sampling: each bin is its centre's value.
    ramp = torch.arange(8.0).repeat(8, 1)[None, None]
    rois = torch.tensor([[0, 1.0, 1.0, 5.0, 3.0]])
    out = native.roi_align(ramp, rois, (1, 2), 1.0, 2, True)
    assert out.flatten().tolist() == [1.5, 3.5]
    legacy = native.roi_align(ramp, rois, (1, 2), 1.0, 2, False)
    assert legacy.flatten().tolist() == [2.0, 4.0]


def test_no_rois_gives_empty_output_and_zero_gradient():
    features = torch.randn(2, 3, 5, 5, requires_grad=True)
    out = native.roi_align(features, torch.zeros(0, 5), 7, 0.5, 0, False)
    assert out.shape == (0, 3, 7, 7)
    out.sum().backward()
    assert features.grad.abs().sum().item() == 0.0


# One float32 sum-order difference can move a half-precision result by one unit in the last
# place: 2**-10 relative for float16 (10 stored mantissa bits), 2**-7 for bfloat16 (7 bits).
HALF_TOLERANCE = {torch.float16: 2**-10, torch.bfloat16: 2**-7}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_compute_in_float32(ops_mode, dtype):
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(2, 16, 20, 24, generator=gen).to(dtype)
    rois = random_rois(gen, 30, 2, 20, 24, 0.5).to(dtype)
    want = torchvision.ops.roi_align(features.float(), rois.float(), 7, 0.5, 0, False)
    for mode in ("native", "kernel"):
        ops_mode(mode)
        got = roi_align(features, rois, 7, 0.5, 0, False)
        assert got.dtype == dtype
        torch.testing.assert_close(
            got.float(), want, rtol=HALF_TOLERANCE[dtype], atol=HALF_TOLERANCE[dtype]
        )


def cpu_autocast_covers(dtype: torch.dtype) -> bool:
    """Older torch (2.1 here) warns and refuses CPU autocast at float16; entering then raises."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            torch.autocast("cpu", dtype=dtype)
        except UserWarning:
            return False
    return True


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_under_autocast_output_keeps_input_dtype_and_gradient_flows(ops_mode, dtype):
    if not cpu_autocast_covers(dtype):
        pytest.skip(f"this torch has no CPU autocast at {dtype}")
    ops_mode("native")
    gen = torch.Generator().manual_seed(2)
    features = torch.randn(1, 4, 12, 12, generator=gen).to(dtype).requires_grad_()
    rois = random_rois(gen, 6, 1, 12, 12, 1.0, zero_area=0.0)
    with torch.autocast("cpu", dtype=dtype):
        out = ROIAlign((3, 3), 1.0, 2)(features, rois)
    assert out.dtype == dtype
    out.float().sum().backward()
    assert features.grad.dtype == dtype
    want = torchvision.ops.roi_align(features.detach().float(), rois, 3, 1.0, 2, False)
    tol = HALF_TOLERANCE[dtype]
    torch.testing.assert_close(out.detach().float(), want, rtol=tol, atol=tol)


def test_module_matches_function_and_describes_itself(ops_mode):
    ops_mode("native")
    features = torch.randn(2, 3, 10, 10)
    rois = torch.tensor([[1, 0.0, 0.0, 9.0, 9.0], [0, 2.0, 3.0, 6.0, 8.0]])
    module = ROIAlign((5, 4), 0.5, 0, aligned=True)
    torch.testing.assert_close(
        module(features, rois), roi_align(features, rois, (5, 4), 0.5, 0, True)
    )
    assert "sampling_ratio=0" in repr(module) and "aligned=True" in repr(module)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_native_op_takes_an_nchw_map_with_one_copy_forward_and_back(ops_mode, dtype):
    """The cast to float32 and the channels-last layout the native op gathers from are one
    copy of the map, not a cast and then a transpose."""
    ops_mode("native")
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(2, 64, 40, 48, generator=gen).to(dtype).requires_grad_()
    rois = random_rois(gen, 20, 2, 40, 48, 0.5, zero_area=0.0)
    roi_align(features.detach(), rois, 7, 0.5, 2, False)  # the choice's preflight: not counted
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, record_shapes=True) as prof:
        out = roi_align(features, rois, 7, 0.5, 2, False)
        out.float().sum().backward()
    shapes = [e.input_shapes[0] for e in prof.events() if e.name == "aten::copy_"]
    map_copies = [s for s in shapes if s and torch.Size(s).numel() == features.numel()]
    # forward one; backward the gradient's copy back (bf16: its cast, then the leaf's layout)
    assert len(map_copies) == (2 if dtype == torch.float32 else 3), map_copies
    want = torchvision.ops.roi_align(features.detach().float(), rois, 7, 0.5, 2, False)
    tol = 1e-5 if dtype == torch.float32 else HALF_TOLERANCE[dtype]
    torch.testing.assert_close(out.detach().float(), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_native_op_reads_a_half_map_as_it_is_where_no_gradient_flows(ops_mode, dtype):
    """Inference: no float32 copy of the map (P2's is the largest cast of a bf16 step), the
    taps still summed in float32 to within one unit in the last place of the output."""
    ops_mode("native")
    gen = torch.Generator().manual_seed(4)
    features = torch.randn(2, 64, 40, 48, generator=gen).to(dtype)
    features = features.contiguous(memory_format=torch.channels_last)
    rois = random_rois(gen, 40, 2, 40, 48, 0.5, zero_area=0.0)
    roi_align(features, rois, 7, 0.5, 0, False)  # the choice's preflight: not counted
    activities = [torch.profiler.ProfilerActivity.CPU]
    profiler = torch.profiler.profile(activities=activities, record_shapes=True)
    with torch.inference_mode(), profiler as prof:
        out = roi_align(features, rois, 7, 0.5, 0, False)
    shapes = [e.input_shapes[0] for e in prof.events() if e.name == "aten::copy_"]
    assert not [s for s in shapes if s and torch.Size(s).numel() == features.numel()]
    want = torchvision.ops.roi_align(features.float(), rois, 7, 0.5, 0, False)
    tol = HALF_TOLERANCE[dtype]
    torch.testing.assert_close(out.float(), want, rtol=tol, atol=tol)
