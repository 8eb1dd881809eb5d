"""Anchors following Detectron's generator: cell anchors per level, shifted over the grid."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _whctrs(anchors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    w = anchors[:, 2] - anchors[:, 0] + 1
    h = anchors[:, 3] - anchors[:, 1] + 1
    return w, h, anchors[:, 0] + 0.5 * (w - 1), anchors[:, 1] + 0.5 * (h - 1)


def _mkanchors(
    ws: torch.Tensor, hs: torch.Tensor, x_ctr: torch.Tensor, y_ctr: torch.Tensor
) -> torch.Tensor:
    half_w, half_h = 0.5 * (ws - 1), 0.5 * (hs - 1)
    return torch.stack((x_ctr - half_w, y_ctr - half_h, x_ctr + half_w, y_ctr + half_h), dim=1)


def generate_anchors(
    stride: int, sizes: Sequence[float], aspect_ratios: Sequence[float]
) -> torch.Tensor:
    """Cell anchors [len(ratios) * len(sizes), 4] (ratio-major) centred on a stride x stride cell.

    Detectron's algorithm: start from the cell box [0, 0, stride-1, stride-1], enumerate aspect
    ratios with widths rounded to whole pixels (round half to even, like numpy), then scale each
    by size / stride. Computed in float64 so the rounding matches numpy's exactly.
    """
    base = torch.tensor([0.0, 0.0, stride - 1.0, stride - 1.0], dtype=torch.float64)[None]
    ratios = torch.tensor(aspect_ratios, dtype=torch.float64)
    scales = torch.tensor(sizes, dtype=torch.float64) / stride
    w, h, x_ctr, y_ctr = _whctrs(base)
    ws = torch.round(torch.sqrt(w * h / ratios))
    hs = torch.round(ws * ratios)
    ratio_anchors = _mkanchors(ws, hs, x_ctr.expand_as(ws), y_ctr.expand_as(ws))
    w, h, x_ctr, y_ctr = _whctrs(ratio_anchors)
    ws = (w[:, None] * scales[None]).reshape(-1)
    hs = (h[:, None] * scales[None]).reshape(-1)
    n = scales.numel()
    anchors = _mkanchors(ws, hs, x_ctr.repeat_interleave(n), y_ctr.repeat_interleave(n))
    return anchors.float()


class BufferList(nn.Module):
    """Tensors kept as buffers named 0..n-1 (so they move with the module and are in its state)."""

    def __init__(self, buffers: Sequence[torch.Tensor]) -> None:
        super().__init__()
        for i, buffer in enumerate(buffers):
            self.register_buffer(str(i), buffer)

    def __len__(self) -> int:
        return len(self._buffers)

    def __iter__(self):
        return iter(self._buffers.values())


class AnchorGenerator(nn.Module):
    """Per feature level, the cell anchors shifted to every location (location-major order)."""

    def __init__(
        self,
        sizes: Sequence[Sequence[float]],
        aspect_ratios: Sequence[float],
        anchor_strides: Sequence[int],
        straddle_thresh: float = 0,
    ) -> None:
        super().__init__()
        if len(sizes) != len(anchor_strides):
            raise ValueError(f"{len(sizes)} anchor size groups for {len(anchor_strides)} strides")
        self.strides = [int(s) for s in anchor_strides]
        pairs = zip(self.strides, sizes, strict=True)
        cells = [generate_anchors(s, sz, aspect_ratios) for s, sz in pairs]
        self.cell_anchors = BufferList(cells)
        self.straddle_thresh = straddle_thresh

    def num_anchors_per_location(self) -> list[int]:
        return [len(c) for c in self.cell_anchors]

    def grid_anchors(self, grid_sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
        """Anchors [H*W*A, 4] per level for feature maps of the given (H, W)."""
        anchors = []
        for (h, w), stride, base in zip(grid_sizes, self.strides, self.cell_anchors, strict=True):
            kw = {"dtype": torch.float32, "device": base.device}
            shifts_x = torch.arange(0, w * stride, step=stride, **kw)
            shifts_y = torch.arange(0, h * stride, step=stride, **kw)
            shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=-1).reshape(-1, 1, 4)
            anchors.append((shifts + base.view(1, -1, 4)).reshape(-1, 4))
        return anchors

    def visibility(self, anchors: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Which anchors lie inside the (height, width) image, up to `straddle_thresh` pixels."""
        if self.straddle_thresh < 0:
            return torch.ones(anchors.shape[0], dtype=torch.bool, device=anchors.device)
        t = self.straddle_thresh
        h, w = image_size
        return (
            (anchors[:, 0] >= -t)
            & (anchors[:, 1] >= -t)
            & (anchors[:, 2] < w + t)
            & (anchors[:, 3] < h + t)
        )

    def forward(self, feature_maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Anchors per level; the same for every image of the batch (one grid, padded size)."""
        return self.grid_anchors([tuple(f.shape[-2:]) for f in feature_maps])


def build_anchor_generator(cfg) -> AnchorGenerator:
    """FPN: one size per level; otherwise all sizes on the single stride."""
    rpn = cfg.MODEL.RPN
    if rpn.USE_FPN:
        if len(rpn.ANCHOR_STRIDE) != len(rpn.ANCHOR_SIZES):
            raise ValueError("MODEL.RPN.ANCHOR_STRIDE and ANCHOR_SIZES need one entry per level")
        sizes = [(s,) for s in rpn.ANCHOR_SIZES]
    else:
        if len(rpn.ANCHOR_STRIDE) != 1:
            raise ValueError("MODEL.RPN.ANCHOR_STRIDE must have one entry without FPN")
        sizes = [tuple(rpn.ANCHOR_SIZES)]
    return AnchorGenerator(sizes, rpn.ASPECT_RATIOS, rpn.ANCHOR_STRIDE, rpn.STRADDLE_THRESH)
