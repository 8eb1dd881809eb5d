"""RoIAlign on the device's kernel, or natively where it has none, with its nn.Module."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rcnn.device import on_host

from . import dispatch
from .precision import autocast_off, compute_dtype


def roi_align(
    input: Tensor,
    rois: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoIAlign of `input` [N, C, H, W] at `rois` [K, 5] (batch index, x1, y1, x2, y2).

    Returns [K, C, *output_size] in input's dtype. `sampling_ratio` <= 0 samples
    ceil(roi size / output size) points per bin; `aligned=False` is the legacy (Detectron,
    maskrcnn-benchmark) pixel model, `aligned=True` shifts by half a pixel. float16/bfloat16
    inputs are computed in float32, as torchvision's autocast does (positions and weights
    always; see `_map_dtype` for the map).
    """
    run = dispatch.implementation("roi_align", input.device)
    dtype = compute_dtype(input.dtype)
    # The native op gathers pixel rows of a channels-last map: one copy casts and lays it out.
    native = dispatch.choose("roi_align", input.device).impl == "native"
    layout = torch.channels_last if native else torch.preserve_format
    with autocast_off(input.device):
        out = run(
            input.to(_map_dtype(input, native), memory_format=layout),
            rois.to(dtype),
            output_size,
            spatial_scale,
            sampling_ratio,
            aligned,
        )
    return out.to(input.dtype)


def _map_dtype(input: Tensor, native: bool) -> torch.dtype:
    """The dtype the op reads the map in. The native op on the host sums its taps in float32
    from a bfloat16/float16 map (its bilinear weights rounded to the map's dtype: at most one
    more rounding than the output's), so where no gradient flows back to the map it reads the
    map as it is: a float32 copy of P2 (2x256x200x336 at 800x1333) costs more than the pooling.
    A gradient summed into a half-precision map would round at every tap: float32 then."""
    dtype = compute_dtype(input.dtype)
    gradient = torch.is_grad_enabled() and input.requires_grad
    if native and on_host(input.device) and input.dtype != dtype and not gradient:
        return input.dtype
    return dtype


class ROIAlign(nn.Module):
    """RoIAlign with fixed output size, scale and sampling, as maskrcnn-benchmark's poolers use."""

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float,
        sampling_ratio: int,
        aligned: bool = False,
    ) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        return roi_align(
            input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )
