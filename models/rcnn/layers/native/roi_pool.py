"""RoIPool in plain torch ops, following torchvision's (Fast R-CNN's) quantised bins exactly.

Each bin's cells, in row-major order, form a "bag" of rows of the channels-last feature map;
one embedding_bag call takes the max of every bag. It keeps the first maximum, the cell that
torchvision's row-major scan keeps, so the gradient (from autograd) lands on the same cell, and
an empty bag (a bin off the map) gives 0, as in torchvision.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .groups import bags, window_groups
from .roi_align import _pair


def _round_half_away(x: Tensor) -> Tensor:
    # C's round(), which torchvision uses; torch.round rounds halves to even.
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def _axis_bins(start: Tensor, length: Tensor, pooled: int, size: int) -> tuple[Tensor, Tensor]:
    """First cell [n, pooled] and cell count [n, pooled] of each bin along one axis."""
    bin_size = length.to(start.dtype) / pooled
    bins = torch.arange(pooled, dtype=start.dtype, device=start.device)
    lo = torch.floor(bins[None, :] * bin_size[:, None]).to(torch.int64)
    hi = torch.ceil((bins[None, :] + 1) * bin_size[:, None]).to(torch.int64)
    offset = start.to(torch.int64)[:, None]
    lo = (lo + offset).clamp(0, size)
    hi = (hi + offset).clamp(0, size)
    return lo, (hi - lo).clamp(min=0)


def roi_pool(
    input: Tensor, rois: Tensor, output_size: int | tuple[int, int], spatial_scale: float = 1.0
) -> Tensor:
    """RoIPool (max) of `input` [N, C, H, W] over `rois` [K, 5] (batch index, x1, y1, x2, y2)."""
    pooled_h, pooled_w = _pair(output_size)
    _, channels, height, width = input.shape
    corners = _round_half_away(rois[:, 1:].to(input.dtype) * spatial_scale)
    x1, y1, x2, y2 = corners.unbind(dim=1)
    y_lo, y_len = _axis_bins(y1, (y2 - y1 + 1).clamp(min=1), pooled_h, height)
    x_lo, x_len = _axis_bins(x1, (x2 - x1 + 1).clamp(min=1), pooled_w, width)
    base = rois[:, 0].to(torch.int64) * (height * width)
    features = input.permute(0, 2, 3, 1).reshape(-1, channels)

    cells, sizes, order = [], [], []
    for idx, bh, bw in window_groups(y_len.amax(1).clamp(min=1), x_len.amax(1).clamp(min=1)):
        rows = torch.arange(bh, device=input.device)
        cols = torch.arange(bw, device=input.device)
        # Broadcast to [n, ph, pw, cell_y, cell_x]; cells past a bin's own size are dropped.
        in_bin = (rows[None, None, None, :, None] < y_len[idx, :, None, None, None]) & (
            cols[None, None, None, None, :] < x_len[idx, None, :, None, None]
        )
        flat = (
            base[idx, None, None, None, None]
            + (y_lo[idx, :, None, None, None] + rows[None, None, None, :, None]) * width
            + x_lo[idx, None, :, None, None]
            + cols[None, None, None, None, :]
        )
        cells.append(flat[in_bin])
        sizes.append(in_bin.flatten(3).sum(dim=3).reshape(-1))
        order.append(idx)
    indices, offsets = bags(cells, sizes)
    out = torch.nn.functional.embedding_bag(indices, features, offsets, mode="max")
    out = out.view(-1, pooled_h, pooled_w, channels)
    if len(order) > 1:
        out = out[torch.argsort(torch.cat(order))]
    return out.permute(0, 3, 1, 2).contiguous()
