"""Operations on BoxLists: IoU and concatenation (legacy +1 convention)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rcnn.structures.bounding_box import TO_REMOVE, BoxList


def legacy_nms_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes grown by one pixel at x2/y2: plain IoU on these equals the legacy +1 IoU."""
    return torch.cat((boxes[:, :2], boxes[:, 2:] + TO_REMOVE), dim=1)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU [N, M] of xyxy boxes with the +1 convention."""
    area1 = (boxes1[:, 2] - boxes1[:, 0] + TO_REMOVE) * (boxes1[:, 3] - boxes1[:, 1] + TO_REMOVE)
    area2 = (boxes2[:, 2] - boxes2[:, 0] + TO_REMOVE) * (boxes2[:, 3] - boxes2[:, 1] + TO_REMOVE)
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt + TO_REMOVE).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1[:, None] + area2 - inter)


def boxlist_iou(boxlist1: BoxList, boxlist2: BoxList) -> torch.Tensor:
    """Pairwise IoU [N, M] between two BoxLists of the same image."""
    if boxlist1.size != boxlist2.size:
        raise ValueError(f"boxlists should have the same image size, got {boxlist1}, {boxlist2}")
    return box_iou(boxlist1.convert("xyxy").bbox, boxlist2.convert("xyxy").bbox)


def _cat(tensors: Sequence[torch.Tensor], dim: int = 0) -> torch.Tensor:
    # Skips the copy when there is a single tensor.
    if len(tensors) == 1:
        return tensors[0]
    return torch.cat(list(tensors), dim)


def cat_boxlist(bboxes: Sequence[BoxList]) -> BoxList:
    """Concatenate BoxLists of the same image, size, mode and fields into one."""
    if not bboxes or not all(isinstance(b, BoxList) for b in bboxes):
        raise TypeError("cat_boxlist expects a non-empty sequence of BoxList")
    size, mode = bboxes[0].size, bboxes[0].mode
    fields = set(bboxes[0].fields())
    for b in bboxes:
        if b.size != size or b.mode != mode or set(b.fields()) != fields:
            raise ValueError(f"cannot concatenate {b} with {bboxes[0]}: size/mode/fields differ")
    out = BoxList(_cat([b.bbox for b in bboxes]), size, mode)
    for field in fields:
        data = [b.get_field(field) for b in bboxes]
        if isinstance(data[0], torch.Tensor):
            out.add_field(field, _cat(data))
        elif hasattr(type(data[0]), "cat"):
            # Non-tensor fields (masks) concatenate through their own class method.
            out.add_field(field, type(data[0]).cat(data))
        else:
            raise TypeError(f"field {field!r} ({type(data[0]).__name__}) cannot be concatenated")
    return out
