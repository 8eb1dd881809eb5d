"""Greedy non-maximum suppression in plain torch ops, index-for-index equal to torchvision's.

The IoU is computed with the same float operations in the same order as torchvision's kernel,
and score ties keep their input order (a stable sort), so the kept indices match exactly.
Callers pass float32 or float64 boxes. Suppression runs over blocks of the score-sorted boxes:
inside a block a fixed-point iteration on the overlap matrix reproduces the sequential greedy
pass without a per-box loop.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

import torch
from torch import Tensor

from rcnn.device import on_host

# Elements of one block's IoU matrix (1 MiB in float32): cache-sized; rows shrink as n grows.
_BLOCK_ELEMENTS = 1 << 18
_MIN_BLOCK, _MAX_BLOCK = 64, 1024
# Elements of the per-group overlap tensor of batched_nms's one-pass path (4 MiB of float32).
_PADDED_ELEMENTS = 1 << 20


def _iou(rows: Tensor, cols: Tensor) -> Tensor:
    """IoU [..., R, C] of xyxy boxes [..., R, 4] and [..., C, 4] without +1, in torchvision's
    operation order."""
    rx1, ry1, rx2, ry2 = (v[..., :, None] for v in rows.unbind(dim=-1))
    cx1, cy1, cx2, cy2 = (v[..., None, :] for v in cols.unbind(dim=-1))
    # In place where possible: fresh [R, C] buffers cost more than the arithmetic.
    w = torch.minimum(rx2, cx2)
    scratch = torch.maximum(rx1, cx1)
    w.sub_(scratch).clamp_(min=0)
    h = torch.minimum(ry2, cy2)
    torch.maximum(ry1, cy1, out=scratch)
    inter = h.sub_(scratch).clamp_(min=0).mul_(w)
    torch.add((rx2 - rx1) * (ry2 - ry1), (cx2 - cx1) * (cy2 - cy1), out=scratch)
    return inter.div_(scratch.sub_(inter))


def _threshold_below(iou_threshold: float, dtype: torch.dtype) -> float:
    """The largest `dtype` value <= the threshold: `iou > it` then means `iou > threshold`.

    torchvision's CPU kernel compares float IoUs with the threshold as a double; comparing with
    the threshold rounded to nearest instead would flip IoUs equal to that rounded value.
    Worked out on the host from the float's bits, with no tensor (and no read from a card).
    """
    if dtype == torch.float64:
        return float(iou_threshold)
    if dtype != torch.float32:
        raise TypeError(f"native nms takes float32 or float64 boxes, got {dtype}")
    (rounded,) = struct.unpack("<f", struct.pack("<f", iou_threshold))
    if rounded <= iou_threshold:
        return rounded
    # one float32 step towards -inf: the bit pattern's magnitude moves by one
    (bits,) = struct.unpack("<I", struct.pack("<f", rounded))
    step = -1 if rounded > 0 else 1
    bits = 0x80000001 if rounded == 0 else bits + step
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def _fixed_point(step: Callable[[Tensor], Tensor], start: Tensor) -> Tensor:
    """Iterate `step` from `start` to its fixed point. On the host a test is free, so it tests
    after every step; on a card each test is a wait, so it tests after 2, 4, 8 ... more steps
    (a fixed point stays fixed: the extra steps cost compute, not the result), and the waits
    grow with the log of the steps needed."""
    state, steps = start, 1 if on_host(start.device) else 2
    while True:
        for _ in range(steps - 1):
            state = step(state)
        nxt = step(state)
        if torch.equal(nxt, state):
            return nxt
        state = nxt
        steps = steps if steps == 1 else steps * 2


def _unsuppressed(within: Tensor, kept: Tensor) -> Tensor:
    """One step of a block's fixed point: boxes no kept earlier box of the block overlaps."""
    return ~(within & kept[:, None]).any(dim=0)


def _group_ends(groups: Tensor) -> list[int]:
    """For each box (groups sorted), where its group ends: the host's plan of both paths below,
    in batched NMS's one read of its own."""
    return torch.searchsorted(groups, groups, right=True).tolist()


def _padded_groups_keep(
    boxes: Tensor, iou_threshold: float, groups: Tensor, group_ends: list[int]
) -> Tensor | None:
    """Keep mask of greedy NMS per group, all groups at once on a [G, M, M] overlap tensor
    (M: the largest group); None when that tensor would exceed the block budget. Nothing here
    waits on the card but the fixed point's test."""
    ends = sorted(set(group_ends))
    num_groups = len(ends)
    largest = max(end - start for start, end in zip([0, *ends[:-1]], ends, strict=True))
    if num_groups * largest * largest > _PADDED_ELEMENTS:
        return None
    n = boxes.shape[0]
    starts_here = torch.ones(n, dtype=torch.bool, device=boxes.device)
    starts_here[1:] = groups[1:] != groups[:-1]
    group = torch.cumsum(starts_here, 0) - 1  # sorted groups numbered 0..G-1
    counts = torch.zeros(num_groups, dtype=torch.int64, device=boxes.device)
    counts.index_add_(0, group, torch.ones_like(group))
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(n, device=boxes.device) - starts[group]
    padded = boxes.new_zeros(num_groups, largest, 4)
    padded[group, slot] = boxes
    valid = torch.zeros(num_groups, largest, dtype=torch.bool, device=boxes.device)
    valid[group, slot] = True
    threshold = _threshold_below(iou_threshold, boxes.dtype)
    within = (_iou(padded, padded) > threshold).triu_(1) & valid[:, :, None]
    # The same fixed-point iteration as _greedy_keep's blocks, over every group in one pass.
    kept = _fixed_point(lambda kept: valid & ~(within & kept[:, :, None]).any(dim=1), valid)
    return kept[group, slot]


def _block_size(n: int) -> int:
    return max(_MIN_BLOCK, min(_MAX_BLOCK, _BLOCK_ELEMENTS // max(n, 1)))


def _overlaps(
    boxes: Tensor, rows: Tensor, cols: Tensor, threshold: float, groups: Tensor | None
) -> Tensor:
    """[R, C] mask: IoU of boxes[rows] with boxes[cols] exceeds the threshold (same group)."""
    over = _iou(boxes[rows], boxes[cols]) > threshold
    if groups is not None:
        over &= groups[rows, None] == groups[None, cols]
    return over


def _greedy_keep(
    boxes: Tensor, iou_threshold: float, groups: Tensor | None, group_ends: list[int] | None
) -> Tensor:
    """Keep mask of greedy NMS over boxes already in processing order.

    With `groups` (sorted, one id per box, each box's group end in `group_ends`) a box only
    suppresses boxes of its own group. Each block waits on the card for its live boxes' count
    (twice) and its fixed point's test: a kernel of the device's own does better.
    """
    n = boxes.shape[0]
    keep = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    suppressed = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    block = _block_size(n)
    threshold = _threshold_below(iou_threshold, boxes.dtype)
    if group_ends is not None:
        # Column range a block can touch: up to the end of the last group it contains.
        # Blocks of about two groups: pairs across groups are computed only to be masked.
        block = min(block, max(_MIN_BLOCK, 2 * n // len(set(group_ends))))
    for start in range(0, n, block):
        end = min(start + block, n)
        # Only boxes no earlier block suppressed take part: the rest can neither keep nor kill.
        alive = start + torch.nonzero(~suppressed[start:end]).squeeze(1)
        if alive.numel() == 0:
            continue
        within = _overlaps(boxes, alive, alive, threshold, groups).triu_(1)
        start_kept = torch.ones(alive.shape[0], dtype=torch.bool, device=boxes.device)
        # Box j's fate depends only on boxes before it, so each pass fixes at least one more
        # box; the fixed point is the unique (sequential greedy) solution.
        kept = _fixed_point(functools.partial(_unsuppressed, within), start_kept)
        winners = alive[kept]
        keep[winners] = True
        stop = n if group_ends is None else group_ends[end - 1]
        later = end + torch.nonzero(~suppressed[end:stop]).squeeze(1)
        if later.numel():
            # later boxes are not suppressed yet: their flags are the hits (no mask, no wait)
            hit = _overlaps(boxes, winners, later, threshold, groups).any(dim=0)
            suppressed.index_copy_(0, later, hit)
    return keep


def _stable_descending(scores: Tensor) -> Tensor:
    return torch.sort(scores, descending=True, stable=True).indices


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices of boxes kept by greedy NMS (IoU > threshold suppresses), by decreasing score."""
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = _stable_descending(scores)
    sorted_boxes = boxes[order]
    return order[_greedy_keep(sorted_boxes, iou_threshold, None, None)]


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category of `idxs`; kept indices by decreasing score, ties by index.

    IoU is computed on the boxes as given (no coordinate offsets), so every category gets
    exactly the plain `nms` it would get on its own.
    """
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    by_score = _stable_descending(scores)
    order = by_score[torch.sort(idxs[by_score], stable=True).indices]
    sorted_boxes, groups = boxes[order], idxs[order].contiguous()
    ends = _group_ends(groups)
    keep = _padded_groups_keep(sorted_boxes, iou_threshold, groups, ends)
    if keep is None:
        keep = _greedy_keep(sorted_boxes, iou_threshold, groups, ends)
    kept = order[keep]  # the keep count: the wait no NMS avoids
    kept = torch.sort(kept).values
    return kept[_stable_descending(scores[kept])]
