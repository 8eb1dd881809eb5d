"""Group rois by window size, and bound how much one gather materialises.

Native roi ops gather every sample of many rois at once, so the rois gathered together must
share one window size (sampling grid or pooling bin extent). With a fixed sampling ratio there is
a single group; with adaptive sampling there is one per distinct size, a handful in practice.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Gathered elements per chunk (float32: 4 bytes each); small enough to stay in cache.
CHUNK_ELEMENTS = 1 << 19


def window_groups(heights: Tensor, widths: Tensor) -> list[tuple[Tensor, int, int]]:
    """(roi indices, window height, window width) for each distinct window size."""
    if heights.shape[0] == 0:
        return [(heights.new_zeros(0, dtype=torch.int64), 1, 1)]
    sizes, group, counts = torch.unique(
        torch.stack((heights, widths), dim=1), dim=0, return_inverse=True, return_counts=True
    )
    members = torch.argsort(group, stable=True).split(counts.tolist())
    return [(idx, h, w) for (h, w), idx in zip(sizes.tolist(), members, strict=True)]


def rows_per_chunk(elements_per_row: int) -> int:
    """How many rows of `elements_per_row` gathered elements fit in one chunk (at least 1)."""
    return max(1, CHUNK_ELEMENTS // max(1, elements_per_row))
