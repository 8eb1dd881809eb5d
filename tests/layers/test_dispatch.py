"""Which implementation each op runs: RCNN_OPS, the preflight, and what the record reports.

Where a kernel is "unavailable", "broken" or "wrong" below, that is a simulation: the kernel
loader is monkeypatched, because this CPU host has a working torchvision.
"""

from types import SimpleNamespace

import pytest
import torch
import torchvision

from rcnn.device.cpu import CpuAdapter
from rcnn.layers import (
    KernelUnavailableError,
    dispatch,
    kernels_used,
    native,
    nms,
    preflight,
    preflight_reasons,
    roi_align,
    roi_pool,
)

CPU = torch.device("cpu")
CPU_NATIVE_OPS = CpuAdapter.native_ops


@pytest.fixture(autouse=True)
def kernel_preferred(monkeypatch):
    """The preflight mechanics below show on this CPU only with its adapter's preference for
    the native roi ops set aside; test_the_adapter_s_faster_native_ops_win_in_auto restores it."""
    monkeypatch.setattr(CpuAdapter, "native_ops", frozenset())


BOXES = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30.0]])
SCORES = torch.tensor([0.9, 0.8, 0.7])
FEATURES = torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(0))
ROIS = torch.tensor([[0, 1.0, 1.0, 6.0, 5.0]])


def simulate_missing_torchvision(monkeypatch):
    def fail():
        raise ImportError("simulated: torchvision is not installed")

    monkeypatch.setattr(dispatch, "load_kernels", fail)


def simulate_kernels(monkeypatch, **overrides):
    """torchvision.ops with some functions replaced."""
    ops = SimpleNamespace(
        nms=torchvision.ops.nms,
        batched_nms=torchvision.ops.batched_nms,
        roi_align=torchvision.ops.roi_align,
        roi_pool=torchvision.ops.roi_pool,
    )
    for name, fn in overrides.items():
        setattr(ops, name, fn)
    monkeypatch.setattr(dispatch, "load_kernels", lambda: ops)


def test_auto_uses_the_kernel_on_this_cpu_and_records_it():
    assert preflight(CPU) == {"nms": "kernel", "roi_align": "kernel", "roi_pool": "kernel"}
    assert kernels_used() == {}
    assert nms(BOXES, SCORES, 0.5).tolist() == [0, 2]
    roi_align(FEATURES, ROIS, 2, 1.0, 2)
    assert kernels_used() == {"nms": "kernel", "roi_align": "kernel"}
    assert preflight_reasons("cpu")["roi_pool"] == "kernel (preflight passed)"


def test_the_adapter_s_faster_native_ops_win_in_auto(ops_mode, monkeypatch):
    monkeypatch.setattr(CpuAdapter, "native_ops", CPU_NATIVE_OPS)
    assert sorted(CPU_NATIVE_OPS) == ["roi_align", "roi_pool"]  # measured faster; nms is not
    assert preflight(CPU) == {"nms": "kernel", "roi_align": "native", "roi_pool": "native"}
    reason = "native (kernel ok, native faster on cpu (RCNN_OPS=kernel: kernel))"
    assert preflight_reasons(CPU)["roi_align"] == reason
    roi_align(FEATURES, ROIS, 2, 1.0, 2)
    assert kernels_used() == {"roi_align": "native"}
    ops_mode("kernel")
    assert preflight(CPU) == {"nms": "kernel", "roi_align": "kernel", "roi_pool": "kernel"}


def test_native_forced_never_loads_the_kernel(ops_mode, monkeypatch):
    ops_mode("native")
    simulate_missing_torchvision(monkeypatch)
    assert preflight(CPU) == {"nms": "native", "roi_align": "native", "roi_pool": "native"}
    assert nms(BOXES, SCORES, 0.5).tolist() == [0, 2]
    out = roi_pool(FEATURES, ROIS, 2, 1.0)
    torch.testing.assert_close(out, torchvision.ops.roi_pool(FEATURES, ROIS, 2, 1.0))
    assert kernels_used() == {"nms": "native", "roi_pool": "native"}
    assert preflight_reasons(CPU)["nms"] == "native (RCNN_OPS=native)"


def test_kernel_forced_but_unavailable_names_op_device_and_cause(ops_mode, monkeypatch):
    ops_mode("kernel")
    simulate_missing_torchvision(monkeypatch)
    with pytest.raises(KernelUnavailableError) as err:
        roi_align(FEATURES, ROIS, 2, 1.0, 2)
    message = str(err.value)
    assert "roi_align" in message and "cpu" in message
    assert "simulated: torchvision is not installed" in message
    assert "RCNN_OPS=native" in message
    assert isinstance(err.value, RuntimeError)


def test_auto_falls_back_to_native_when_torchvision_is_missing(monkeypatch):
    simulate_missing_torchvision(monkeypatch)
    assert preflight(CPU) == {"nms": "native", "roi_align": "native", "roi_pool": "native"}
    assert "ImportError" in preflight_reasons(CPU)["nms"]
    assert nms(BOXES, SCORES, 0.5).tolist() == [0, 2]


def test_a_kernel_that_fails_on_the_device_is_not_used(monkeypatch):
    def no_kernel_for_device(*args):
        raise NotImplementedError("simulated: no roi_align kernel for this backend")

    simulate_kernels(monkeypatch, roi_align=no_kernel_for_device)
    assert preflight(CPU) == {"nms": "kernel", "roi_align": "native", "roi_pool": "kernel"}
    assert "simulated: no roi_align kernel" in preflight_reasons(CPU)["roi_align"]
    out = roi_align(FEATURES, ROIS, 2, 1.0, 2)
    torch.testing.assert_close(out, torchvision.ops.roi_align(FEATURES, ROIS, 2, 1.0, 2))


def test_a_kernel_that_disagrees_with_native_is_not_used(monkeypatch):
    # Simulated vendor kernels: nms keeps a wrong box, roi_pool's backward is wrong.
    def wrong_nms(boxes, scores, threshold):
        return torchvision.ops.nms(boxes, scores, threshold)[:1]

    def wrong_grad_roi_pool(input, rois, output_size, spatial_scale):
        out = torchvision.ops.roi_pool(input, rois, output_size, spatial_scale)
        return out.detach() + 2 * (out - out.detach())

    simulate_kernels(monkeypatch, nms=wrong_nms, roi_pool=wrong_grad_roi_pool)
    reasons = preflight_reasons(CPU)
    assert reasons["nms"].startswith("native (kept [")
    assert reasons["roi_pool"].startswith("native (gradient 0 differs from the native op by")
    assert reasons["roi_align"] == "kernel (preflight passed)"


def test_kernel_is_used_unchecked_where_the_native_op_cannot_run(monkeypatch):
    # Simulated: a device lacking an aten op the native roi_align needs.
    def missing_aten_op(*args):
        raise NotImplementedError("simulated: aten::_embedding_bag is not implemented")

    monkeypatch.setattr(native, "roi_align", missing_aten_op)
    reasons = preflight_reasons(CPU)
    assert reasons["roi_align"].startswith("kernel (kernel ran; native op cannot run here")
    assert reasons["nms"] == "kernel (preflight passed)"


def test_preflight_runs_once_per_op_and_device(monkeypatch):
    loads = []

    def counting_loader():
        loads.append(1)
        return torchvision.ops

    monkeypatch.setattr(dispatch, "load_kernels", counting_loader)
    preflight(CPU)
    checks = len(loads)
    for _ in range(3):
        preflight("cpu")
    nms(BOXES, SCORES, 0.5)
    assert checks == 3
    assert len(loads) == checks + 1  # the nms call loads torchvision.ops to call it, no check


def test_choice_made_under_inference_mode_and_autocast_still_finds_the_kernel():
    # The first op of an inference run happens under inference_mode (and maybe autocast);
    # the preflight needs gradients and float32, so it must lift both.
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        roi_align(FEATURES, ROIS, 2, 1.0, 2)
    assert kernels_used() == {"roi_align": "kernel"}


def test_unknown_mode_is_a_clear_error(ops_mode):
    ops_mode("fast")
    with pytest.raises(ValueError, match="RCNN_OPS='fast' is not one of auto, kernel, native"):
        nms(BOXES, SCORES, 0.5)


def test_kernels_used_reports_both_when_an_op_ran_both_ways(monkeypatch):
    nms(BOXES, SCORES, 0.5)
    monkeypatch.setenv(dispatch.ENV, "native")  # switched mid-run, without a reset
    nms(BOXES, SCORES, 0.5)
    assert kernels_used() == {"nms": "kernel+native"}


DISPATCHER_DUMP = (
    "Could not run 'aten::sort.stable' with arguments from the 'strict' backend. This could be "
    "because the operator doesn't exist for this backend.\n\nCPU: registered at Register.cpp\n"
    "Meta: registered at Register.cpp\nPython: registered at Register.cpp"
)


@pytest.mark.parametrize("forced", ["auto", "native"])
def test_an_op_neither_the_kernel_nor_the_native_op_runs_is_unusable_and_named(
    ops_mode, monkeypatch, forced
):
    # Simulated: a plug-in with no torchvision kernels and no sort kernel for the native nms.
    def no_kernel(*args):
        raise NotImplementedError("simulated: torchvision::nms has no kernel here")

    def no_sort(*args):
        raise NotImplementedError(DISPATCHER_DUMP)

    ops_mode(forced)
    simulate_kernels(monkeypatch, nms=no_kernel)
    monkeypatch.setattr(native, "nms", no_sort)
    assert preflight(CPU)["nms"] == "unusable: aten::sort.stable missing"
    with pytest.raises(KernelUnavailableError) as raised:
        nms(BOXES, SCORES, 0.5)
    message = str(raised.value)
    assert message.startswith("nms cannot run on cpu: aten::sort.stable missing")
    assert "\n" not in message
    assert kernels_used() == {}  # nothing ran


def test_a_native_op_failing_otherwise_than_by_a_missing_kernel_stays_the_choice(monkeypatch):
    # Only NotImplementedError proves a kernel missing; a tiny case failing otherwise does not.
    def no_kernel(*args):
        raise NotImplementedError("simulated: torchvision::roi_pool has no kernel here")

    def fails_in_backward(*args):
        raise RuntimeError("simulated: the autograd engine has no queue for this card")

    simulate_kernels(monkeypatch, roi_pool=no_kernel)
    monkeypatch.setattr(native, "roi_pool", fails_in_backward)
    assert preflight(CPU)["roi_pool"] == "native"
