"""RoIAlign in plain torch ops, following torchvision's sampling rules exactly.

Every roi bin averages a grid of bilinear samples. The sample positions along y and x are
computed separately (the grid is their product); each bin then is a weighted sum of the 4
corner taps of its samples: a "bag" of rows of the channels-last feature map. One
embedding_bag call reduces every bag of every roi, without materialising the gathered taps, and
its autograd backward scatters the gradient into one feature-sized buffer.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .groups import bags, one_window, window_groups


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _axis_taps(
    start: Tensor, bin_size: Tensor, grid: Tensor, pooled: int, grid_max: int, size: int
) -> tuple[Tensor, Tensor]:
    """Low/high pixel indices and weights [n, pooled, grid_max, 2] of one axis's samples."""
    dtype = start.dtype
    bins = torch.arange(pooled, dtype=dtype, device=start.device)[None, :, None]
    steps = torch.arange(grid_max, dtype=dtype, device=start.device)[None, None, :] + 0.5
    start, bin_size = start[:, None, None], bin_size[:, None, None]
    cells = grid.clamp(min=1).to(dtype)[:, None, None]
    # Same operation order as torchvision's kernel, so positions agree to the last bit.
    pos = start + bins * bin_size + steps * bin_size / cells
    used = (steps < grid[:, None, None]) & (pos >= -1.0) & (pos <= size)
    pos = torch.where(used, pos, 0.0).clamp(min=0.0)
    low = pos.to(torch.int64)
    at_edge = low >= size - 1
    low = torch.where(at_edge, size - 1, low)
    high = torch.where(at_edge, size - 1, low + 1)
    frac = torch.where(at_edge, 0.0, pos - low.to(dtype))
    w_low = torch.where(used, 1.0 - frac, 0.0)
    w_high = torch.where(used, frac, 0.0)
    taps = torch.stack((low, high), dim=-1).flatten(2)
    return taps, torch.stack((w_low, w_high), dim=-1).flatten(2)


def _merge_taps(taps: Tensor, weights: Tensor, length: int, size: int) -> tuple[Tensor, Tensor]:
    """The taps [n, pooled, T] of each bin as weights over `length` consecutive pixels from its
    first tap, duplicates summed. With adaptive sampling the samples of a bin are at most one
    pixel apart, so its 2 * grid taps fall on grid + 1 pixels: fewer, shared, taps per bag."""
    start = taps[..., :1]
    # Only zero-weight taps (unused samples, clamped to 0) can fall outside the window.
    offsets = (taps - start).clamp(0, length - 1)
    merged = weights.new_zeros(*weights.shape[:2], length).scatter_add_(2, offsets, weights)
    window = (start + torch.arange(length, device=taps.device)).clamp(max=size - 1)
    return window, merged


def roi_align(
    input: Tensor,
    rois: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoIAlign of `input` [N, C, H, W] over `rois` [K, 5] (batch index, x1, y1, x2, y2).

    Positions and weights are computed in the wider of `rois`' and `input`'s dtypes (callers
    pass float32 or float64 rois); the taps are summed in float32 or wider (embedding_bag does
    for bfloat16 and float16 maps on the host) and returned in `input`'s dtype.
    """
    pooled_h, pooled_w = _pair(output_size)
    _, channels, height, width = input.shape
    dtype = torch.promote_types(input.dtype, rois.dtype)
    rois = rois.to(dtype)
    offset = 0.5 if aligned else 0.0
    x1 = rois[:, 1] * spatial_scale - offset
    y1 = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - x1
    roi_h = rois[:, 4] * spatial_scale - offset - y1
    if not aligned:
        # Legacy mode: rois are at least one pixel, as in maskrcnn-benchmark.
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_w, bin_h = roi_w / pooled_w, roi_h / pooled_h
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, sampling_ratio, dtype=torch.int64)
        grid_w = grid_h
    else:
        grid_h = torch.ceil(roi_h / pooled_h).clamp(min=0).to(torch.int64)
        grid_w = torch.ceil(roi_w / pooled_w).clamp(min=0).to(torch.int64)
    count = (grid_h * grid_w).clamp(min=1).to(dtype)
    base = rois[:, 0].to(torch.int64) * (height * width)
    features = input.permute(0, 2, 3, 1).reshape(-1, channels)

    taps, weights, sizes, order = [], [], [], []
    fixed = sampling_ratio > 0
    for idx, gh, gw in one_window(sampling_ratio) if fixed else window_groups(grid_h, grid_w):
        y_idx, y_w = _axis_taps(y1[idx], bin_h[idx], grid_h[idx], pooled_h, gh, height)
        x_idx, x_w = _axis_taps(x1[idx], bin_w[idx], grid_w[idx], pooled_w, gw, width)
        if not fixed:
            y_idx, y_w = _merge_taps(y_idx, y_w, min(2 * gh, gh + 1), height)
            x_idx, x_w = _merge_taps(x_idx, x_w, min(2 * gw, gw + 1), width)
        # Broadcast to [n, ph, pw, taps_y, taps_x]: one bag per bin.
        flat = (
            base[idx, None, None, None, None]
            + y_idx[:, :, None, :, None] * width
            + x_idx[:, None, :, None, :]
        )
        weight = y_w[:, :, None, :, None] * x_w[:, None, :, None, :]
        weight = weight / count[idx, None, None, None, None]
        taps.append(flat.reshape(-1))
        weights.append(weight.reshape(-1))
        bins = y_idx.shape[0] * pooled_h * pooled_w
        bag = y_idx.shape[-1] * x_idx.shape[-1]
        sizes.append(torch.full((bins,), bag, dtype=torch.int64, device=input.device))
        order.append(idx)
    indices, offsets = bags(taps, sizes)
    weights = torch.cat(weights).to(input.dtype)
    out = torch.nn.functional.embedding_bag(
        indices, features, offsets, mode="sum", per_sample_weights=weights
    )
    out = out.view(-1, pooled_h, pooled_w, channels)
    if len(order) > 1:
        out = out[torch.argsort(torch.cat(order))]
    # NCHW shape in channels-last memory: a transposing copy of every pooled feature (the
    # largest tensor of a C4 head) costs more than the pooling; consumers take any layout.
    return out.permute(0, 3, 1, 2)
