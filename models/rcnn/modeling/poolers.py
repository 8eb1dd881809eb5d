"""Multi-level ROIAlign: each box is pooled from the FPN level that matches its size."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from rcnn.layers import ROIAlign
from rcnn.structures.bounding_box import BoxList


class LevelMapper:
    """FPN paper eq. 1: level = floor(canonical_level + log2(sqrt(area) / canonical_scale + eps)),
    clamped to [k_min, k_max]; returned relative to k_min. Areas use the +1 convention."""

    def __init__(
        self,
        k_min: int,
        k_max: int,
        canonical_scale: int = 224,
        canonical_level: int = 4,
        eps: float = 1e-6,
    ) -> None:
        self.k_min = k_min
        self.k_max = k_max
        self.s0 = canonical_scale
        self.lvl0 = canonical_level
        self.eps = eps

    def __call__(self, boxlists: Sequence[BoxList]) -> torch.Tensor:
        s = torch.sqrt(torch.cat([b.area() for b in boxlists]))
        target_lvls = torch.floor(self.lvl0 + torch.log2(s / self.s0 + self.eps))
        target_lvls = torch.clamp(target_lvls, min=self.k_min, max=self.k_max)
        # A NaN size gets a level too: the pooler fills only the rows its levels pool.
        return target_lvls.nan_to_num_(self.k_min).to(torch.int64) - self.k_min


def convert_to_roi_format(boxes: Sequence[BoxList]) -> torch.Tensor:
    """BoxLists -> rois [K, 5] of (batch index, x1, y1, x2, y2)."""
    concat_boxes = torch.cat([b.bbox for b in boxes], dim=0)
    ids = torch.cat(
        [
            torch.full((len(b), 1), i, dtype=concat_boxes.dtype, device=concat_boxes.device)
            for i, b in enumerate(boxes)
        ]
    )
    return torch.cat([ids, concat_boxes], dim=1)


class Pooler(nn.Module):
    """One ROIAlign per feature level; boxes are routed to levels by LevelMapper."""

    def __init__(
        self, output_size: int | tuple[int, int], scales: Sequence[float], sampling_ratio: int
    ) -> None:
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(output_size)
        self.poolers = nn.ModuleList(
            [
                ROIAlign(self.output_size, spatial_scale=s, sampling_ratio=sampling_ratio)
                for s in scales
            ]
        )
        # Levels from the scales: 1/4 -> 2, ..., 1/32 -> 5.
        lvl_min = -math.log2(scales[0])
        lvl_max = -math.log2(scales[-1])
        if round(lvl_max) - round(lvl_min) + 1 != len(scales):
            raise ValueError(f"pooler scales {list(scales)} are not consecutive powers of 1/2")
        self.map_levels = LevelMapper(round(lvl_min), round(lvl_max))

    def forward(self, x: Sequence[torch.Tensor], boxes: Sequence[BoxList]) -> torch.Tensor:
        """Features [K, C, out_h, out_w] for all images' boxes, in BoxList order."""
        rois = convert_to_roi_format(boxes)
        if len(self.poolers) == 1:
            return self.poolers[0](x[0], rois)
        levels = self.map_levels(boxes)
        # Every roi maps to one of the poolers' levels (LevelMapper clamps): no fill needed.
        result = x[0].new_empty((rois.shape[0], x[0].shape[1], *self.output_size))
        # x may hold extra levels (P6 for the RPN) that no pooler reads.
        for level, (feature, pooler) in enumerate(zip(x, self.poolers, strict=False)):
            idx = torch.nonzero(levels == level).squeeze(1)
            if idx.numel():
                result.index_copy_(0, idx, pooler(feature, rois[idx]).to(result.dtype))
        return result
