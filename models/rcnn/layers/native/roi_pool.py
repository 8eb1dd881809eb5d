"""RoIPool in plain torch ops, following torchvision's (Fast R-CNN's) quantised bins exactly.

Every bin is padded to the largest bin of its roi group, all bin cells of a chunk are gathered
from a channels-last view of the features at once, and the max is taken over them. torch.max
returns the first maximum, which is the cell torchvision's row-major scan keeps, so the gradient
(from autograd) lands on the same cell.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .chunks import rows_per_chunk, window_groups
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

    parts, order = [], []
    for idx, bh, bw in window_groups(y_len.amax(1).clamp(min=1), x_len.amax(1).clamp(min=1)):
        rows = torch.arange(bh, device=input.device)
        cols = torch.arange(bw, device=input.device)
        # Broadcast to [n, ph, pw, cell_y, cell_x]; padding cells are masked out below.
        in_bin = (rows[None, None, None, :, None] < y_len[idx, :, None, None, None]) & (
            cols[None, None, None, None, :] < x_len[idx, None, :, None, None]
        )
        flat = (
            base[idx, None, None, None, None]
            + (y_lo[idx, :, None, None, None] + rows[None, None, None, :, None]) * width
            + x_lo[idx, None, :, None, None]
            + cols[None, None, None, None, :]
        )
        bins, cells = idx.shape[0] * pooled_h * pooled_w, bh * bw
        flat = torch.where(in_bin, flat, 0).reshape(bins, cells)
        in_bin = in_bin.reshape(bins, cells, 1)
        step = rows_per_chunk(cells * channels)
        for start in range(0, max(bins, 1), step):
            chunk = flat[start : start + step]
            values = features.index_select(0, chunk.reshape(-1)).view(*chunk.shape, channels)
            inside = in_bin[start : start + step]
            values = torch.where(inside, values, float("-inf"))
            # An empty bin (roi outside the map) is 0, as in torchvision.
            best = torch.where(inside.any(dim=1), values.max(dim=1).values, 0.0)
            parts.append(best)
        order.append(idx)
    out = torch.cat(parts) if len(parts) > 1 else parts[0]
    out = out.view(-1, pooled_h, pooled_w, channels)
    if len(order) > 1:
        out = out[torch.argsort(torch.cat(order))]
    return out.permute(0, 3, 1, 2).contiguous()
