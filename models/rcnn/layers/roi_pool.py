"""RoIPool (max) on the device's kernel, or natively where it has none, with its nn.Module."""

from __future__ import annotations

from torch import Tensor, nn

from . import dispatch
from .precision import autocast_off, compute_dtype


def roi_pool(
    input: Tensor, rois: Tensor, output_size: int | tuple[int, int], spatial_scale: float = 1.0
) -> Tensor:
    """Max-pool `input` [N, C, H, W] over the quantised bins of `rois` [K, 5].

    Returns [K, C, *output_size] in input's dtype; empty bins are 0.
    """
    run = dispatch.implementation("roi_pool", input.device)
    dtype = compute_dtype(input.dtype)
    with autocast_off(input.device):
        out = run(input.to(dtype), rois.to(dtype), output_size, spatial_scale)
    return out.to(input.dtype)


class ROIPool(nn.Module):
    """RoIPool with fixed output size and scale."""

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"
