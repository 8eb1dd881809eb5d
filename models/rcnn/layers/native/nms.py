"""Greedy non-maximum suppression in plain torch ops, index-for-index equal to torchvision's.

The IoU is computed with the same float operations in the same order as torchvision's kernel,
and score ties keep their input order (a stable sort), so the kept indices match exactly.
Callers pass float32 or float64 boxes. Suppression runs over blocks of the score-sorted boxes:
inside a block a fixed-point iteration on the overlap matrix reproduces the sequential greedy
pass without a per-box loop.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Elements of one block's IoU matrix; bounds memory for tens of thousands of boxes.
_BLOCK_ELEMENTS = 1 << 22
_MIN_BLOCK, _MAX_BLOCK = 64, 1024


def _iou(rows: Tensor, cols: Tensor) -> Tensor:
    """IoU [R, C] of xyxy boxes without +1, in torchvision's operation order."""
    area_r = (rows[:, 2] - rows[:, 0]) * (rows[:, 3] - rows[:, 1])
    area_c = (cols[:, 2] - cols[:, 0]) * (cols[:, 3] - cols[:, 1])
    lt = torch.maximum(rows[:, None, :2], cols[None, :, :2])
    rb = torch.minimum(rows[:, None, 2:], cols[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_r[:, None] + area_c[None, :] - inter)


def _threshold_below(iou_threshold: float, dtype: torch.dtype) -> float:
    """The largest `dtype` value <= the threshold: `iou > it` then means `iou > threshold`.

    torchvision's CPU kernel compares float IoUs with the threshold as a double; comparing with
    the threshold rounded to nearest instead would flip IoUs equal to that rounded value.
    """
    rounded = torch.tensor(iou_threshold, dtype=dtype)
    if rounded.item() > iou_threshold:
        rounded = torch.nextafter(rounded, torch.tensor(float("-inf"), dtype=dtype))
    return rounded.item()


def _block_size(n: int) -> int:
    return max(_MIN_BLOCK, min(_MAX_BLOCK, _BLOCK_ELEMENTS // max(n, 1)))


def _greedy_keep(boxes: Tensor, iou_threshold: float, groups: Tensor | None) -> Tensor:
    """Keep mask of greedy NMS over boxes already in processing order.

    With `groups` (sorted, one id per box) a box only suppresses boxes of its own group.
    """
    n = boxes.shape[0]
    keep = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    suppressed = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    block = _block_size(n)
    iou_threshold = _threshold_below(iou_threshold, boxes.dtype)
    group_ends = None
    if groups is not None:
        # Column range a block can touch: up to the end of the last group it contains.
        group_ends = torch.searchsorted(groups, groups, right=True).tolist()
    for start in range(0, n, block):
        end = min(start + block, n)
        stop = n if group_ends is None else group_ends[end - 1]
        over = _iou(boxes[start:end], boxes[start:stop]) > iou_threshold
        if groups is not None:
            over &= groups[start:end, None] == groups[None, start:stop]
        within = over[:, : end - start].triu(1)
        alive = ~suppressed[start:end]
        kept = alive
        # Box j's fate depends only on boxes before it, so each pass fixes at least one more
        # box; the first repeated state is the unique (sequential greedy) solution.
        while True:
            hit = (within & kept[:, None]).any(dim=0)
            nxt = alive & ~hit
            if torch.equal(nxt, kept):
                break
            kept = nxt
        keep[start:end] = kept
        if stop > end:
            suppressed[end:stop] |= over[kept, end - start :].any(dim=0)
    return keep


def _stable_descending(scores: Tensor) -> Tensor:
    return torch.sort(scores, descending=True, stable=True).indices


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices of boxes kept by greedy NMS (IoU > threshold suppresses), by decreasing score."""
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = _stable_descending(scores)
    sorted_boxes = boxes[order]
    return order[_greedy_keep(sorted_boxes, iou_threshold, None)]


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category of `idxs`; kept indices by decreasing score, ties by index.

    IoU is computed on the boxes as given (no coordinate offsets), so every category gets
    exactly the plain `nms` it would get on its own.
    """
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    by_score = _stable_descending(scores)
    order = by_score[torch.sort(idxs[by_score], stable=True).indices]
    sorted_boxes = boxes[order]
    kept = order[_greedy_keep(sorted_boxes, iou_threshold, idxs[order].contiguous())]
    kept = torch.sort(kept).values
    return kept[_stable_descending(scores[kept])]
