"""Tiny inputs that check a device's kernel against the native op before it is trusted.

Each case runs the kernel and the native op on the device and returns None when they agree,
else one line saying what differed. Inputs are made on the CPU with a fixed seed, then moved.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# Kernel and native op both compute in float32 here; they differ only in summation order.
_TOLERANCE = 1e-4


def _features(device: torch.device) -> Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 9, 11, generator=gen).to(device).requires_grad_()


def _rois(device: torch.device) -> Tensor:
    # Two images, a box past the border, a zero-area box and a box larger than its bins.
    return torch.tensor(
        [
            [0, 1.0, 1.5, 7.2, 6.0],
            [1, -2.0, 3.0, 12.5, 10.0],
            [1, 4.0, 4.0, 4.0, 4.0],
            [0, 0.3, 0.0, 10.9, 8.7],
        ],
        device=device,
    )


def _compare(name: str, kernel: Tensor, native: Tensor) -> str | None:
    kernel, native = kernel.detach().cpu(), native.detach().cpu()
    if kernel.shape != native.shape:
        return f"{name} shape {tuple(kernel.shape)} != native {tuple(native.shape)}"
    gap = (kernel - native).abs().max().item() if kernel.numel() else 0.0
    if not gap <= _TOLERANCE:
        return f"{name} differs from the native op by {gap:.3g}"
    return None


def _forward_backward(run: Callable[[Tensor], Tensor], device: torch.device) -> list[Tensor]:
    features = _features(device)
    out = run(features)
    upstream = torch.linspace(-1, 1, out.numel(), device=device).view_as(out)
    (grad,) = torch.autograd.grad(out, features, upstream)
    return [out, grad]


def _check_roi_op(runs: list[tuple[Callable, Callable]], device: torch.device) -> str | None:
    for kernel_run, native_run in runs:
        kernel = _forward_backward(kernel_run, device)
        native = _forward_backward(native_run, device)
        for name, k, n in zip(("output", "gradient"), kernel, native, strict=True):
            problem = _compare(name, k, n)
            if problem:
                return problem
    return None


def nms_case(kernel: Callable, native: Callable, device: torch.device) -> str | None:
    boxes = torch.tensor(
        [[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [20, 20, 30, 30], [21, 19, 29, 31.0]],
        device=device,
    )
    scores = torch.tensor([0.9, 0.8, 0.9, 0.3, 0.7], device=device)
    got, want = kernel(boxes, scores, 0.5).cpu(), native(boxes, scores, 0.5).cpu()
    if not torch.equal(got, want):
        return f"kept {got.tolist()}, native keeps {want.tolist()}"
    return None


def roi_align_case(kernel: Callable, native: Callable, device: torch.device) -> str | None:
    rois = _rois(device)
    settings = [((3, 4), 0.5, 2, False), ((2, 2), 1.0, 0, True)]
    runs = [
        (
            lambda x, s=s: kernel(x, rois, *s),
            lambda x, s=s: native(x, rois, *s),
        )
        for s in settings
    ]
    return _check_roi_op(runs, device)


def roi_pool_case(kernel: Callable, native: Callable, device: torch.device) -> str | None:
    rois = _rois(device)
    runs = [(lambda x: kernel(x, rois, (3, 2), 0.5), lambda x: native(x, rois, (3, 2), 0.5))]
    return _check_roi_op(runs, device)


CASES: dict[str, Callable[[Callable, Callable, torch.device], str | None]] = {
    "nms": nms_case,
    "roi_align": roi_align_case,
    "roi_pool": roi_pool_case,
}
