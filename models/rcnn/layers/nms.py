"""Non-maximum suppression on the device's kernel, or natively where it has none.

Boxes are (x1, y1, x2, y2) and IoU has no +1, as in torchvision. maskrcnn-benchmark's legacy
IoU (width = x2 - x1 + 1) is the plain IoU of the boxes with x2 and y2 grown by 1, so legacy
callers pass `boxes + [0, 0, 1, 1]` (see rcnn.structures.boxlist_ops.legacy_nms_boxes).
float16/bfloat16 boxes are compared in float32.
"""

from __future__ import annotations

from torch import Tensor

from . import dispatch
from .precision import autocast_off, compute_dtype


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices (int64) of the boxes kept by greedy NMS, by decreasing score.

    A box is dropped when its IoU with a kept higher-scored box exceeds `iou_threshold`;
    equal scores keep their input order.
    """
    run = dispatch.implementation("nms", boxes.device)
    dtype = compute_dtype(boxes.dtype)
    with autocast_off(boxes.device):
        return run(boxes.to(dtype), scores.to(dtype), iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category `idxs` (boxes of different categories never suppress).

    Kept indices by decreasing score. For equal scores the native op keeps input order, while
    torchvision's kernel path orders them with an unstable sort on large inputs.
    """
    run = dispatch.implementation("batched_nms", boxes.device)
    dtype = compute_dtype(boxes.dtype)
    with autocast_off(boxes.device):
        return run(boxes.to(dtype), scores.to(dtype), idxs, iou_threshold)
