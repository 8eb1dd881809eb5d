"""Tiny inputs that check a device's kernel against the native op before it is trusted.

For each op, `run(fn, device)` calls an implementation on the device and returns what it gave
(outputs and input gradients, on the CPU), and `compare(kernel, native)` says what differs, or
None. Inputs are made on the CPU with a fixed seed, then moved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

# Kernel and native op both compute in float32 here; they differ only in summation order.
_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Case:
    run: Callable[[Callable, torch.device], list[Tensor]]
    compare: Callable[[list[Tensor], list[Tensor]], str | None]


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


def _forward_backward(pool: Callable[[Tensor], Tensor], device: torch.device) -> list[Tensor]:
    features = _features(device)
    out = pool(features)
    upstream = torch.linspace(-1, 1, out.numel(), device=device).view_as(out)
    (grad,) = torch.autograd.grad(out, features, upstream)
    return [out.detach().cpu(), grad.cpu()]


def _compare_close(kernel: list[Tensor], native: list[Tensor]) -> str | None:
    # Results alternate output, gradient for each setting tried.
    names = [f"{('output', 'gradient')[i % 2]} {i // 2}" for i in range(len(kernel))]
    for name, k, n in zip(names, kernel, native, strict=True):
        if k.shape != n.shape:
            return f"{name} shape {tuple(k.shape)} != native {tuple(n.shape)}"
        gap = (k - n).abs().max().item() if k.numel() else 0.0
        if not gap <= _TOLERANCE:
            return f"{name} differs from the native op by {gap:.3g}"
    return None


def _run_nms(nms: Callable, device: torch.device) -> list[Tensor]:
    boxes = torch.tensor(
        [[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [20, 20, 30, 30], [21, 19, 29, 31.0]],
        device=device,
    )
    scores = torch.tensor([0.9, 0.8, 0.9, 0.3, 0.7], device=device)
    return [nms(boxes, scores, 0.5).cpu()]


def _compare_nms(kernel: list[Tensor], native: list[Tensor]) -> str | None:
    if torch.equal(kernel[0], native[0]):
        return None
    return f"kept {kernel[0].tolist()}, native keeps {native[0].tolist()}"


def _run_roi_align(roi_align: Callable, device: torch.device) -> list[Tensor]:
    rois = _rois(device)
    results = []
    for settings in [((3, 4), 0.5, 2, False), ((2, 2), 1.0, 0, True)]:
        results += _forward_backward(lambda x, s=settings: roi_align(x, rois, *s), device)
    return results


def _run_roi_pool(roi_pool: Callable, device: torch.device) -> list[Tensor]:
    rois = _rois(device)
    return _forward_backward(lambda x: roi_pool(x, rois, (3, 2), 0.5), device)


CASES = {
    "nms": Case(_run_nms, _compare_nms),
    "roi_align": Case(_run_roi_align, _compare_close),
    "roi_pool": Case(_run_roi_pool, _compare_close),
}
