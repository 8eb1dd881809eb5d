"""Group rois by window size, so each group's sample indices build as one dense tensor.

A window is a roi's sampling grid (RoIAlign) or its largest pooling bin (RoIPool). A fixed
sampling ratio gives one group, known on the host (`one_window`: no read); adaptive sampling
one per distinct size, a handful in practice, learnt in one host read.
"""

from __future__ import annotations

import torch
from torch import Tensor


def window_groups(heights: Tensor, widths: Tensor) -> list[tuple[Tensor, int, int]]:
    """(roi indices, window height, window width) for each distinct window size; the sizes
    and group counts come to the host in one read."""
    if heights.shape[0] == 0:
        return [(heights.new_zeros(0, dtype=torch.int64), 1, 1)]
    sizes, group, counts = torch.unique(
        torch.stack((heights, widths), dim=1), dim=0, return_inverse=True, return_counts=True
    )
    table = torch.cat((sizes, counts[:, None]), dim=1).tolist()
    members = torch.argsort(group, stable=True).split([count for _, _, count in table])
    return [(idx, h, w) for (h, w, _), idx in zip(table, members, strict=True)]


def one_window(size: int) -> list[tuple[slice, int, int]]:
    """The one group of a fixed sampling ratio: every roi, a window known without a read."""
    return [(slice(None), size, size)]


def bags(indices: list[Tensor], counts: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Concatenate ragged bags: all indices, and where each bag starts (embedding_bag offsets)."""
    sizes = torch.cat(counts)
    offsets = torch.cumsum(sizes, 0) - sizes
    return torch.cat(indices), offsets
