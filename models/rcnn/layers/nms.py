"""Non-maximum suppression on the device's kernel, or natively where it has none.

Boxes are (x1, y1, x2, y2) and IoU has no +1, as in torchvision. maskrcnn-benchmark's legacy
IoU (width = x2 - x1 + 1) is the plain IoU of the boxes with x2 and y2 grown by 1, so legacy
callers pass `boxes + [0, 0, 1, 1]` (see rcnn.structures.boxlist_ops.legacy_nms_boxes).
float16/bfloat16 boxes are compared in float32.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rcnn.device import on_host
from rcnn.modeling.utils import group_sizes, rank_within_groups

from . import dispatch
from .precision import autocast_off, compute_dtype

# From this many boxes torchvision's batched_nms on the host loops over its categories, each
# found by a full-length comparison and nonzero; contiguous slices of the boxes sorted by
# category cost one sort instead.
_BY_SLICES_FROM = 1000
# Host top-k NMS starts from this many of each image's best boxes per wanted detection and
# grows the prefix 4x while an image's top k are not settled by it.
_PREFIX_PER_WANTED = 8


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
    device = boxes.device
    by_slices = on_host(device) and boxes.shape[0] > _BY_SLICES_FROM
    run = dispatch.implementation("batched_nms", device)
    dtype = compute_dtype(boxes.dtype)
    with autocast_off(device):
        if by_slices and dispatch.choose("nms", device).impl == "kernel":
            with torch.profiler.record_function("rcnn::batched_nms"):
                return _nms_by_slices(boxes.to(dtype), scores.to(dtype), idxs, iou_threshold)
        return run(boxes.to(dtype), scores.to(dtype), idxs, iou_threshold)


def _nms_by_slices(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """batched_nms as one nms per category on its slice of the boxes sorted by category (in
    input order within it, as torchvision's loop gives them): the same kept boxes; equal
    scores keep input order."""
    order = torch.argsort(idxs, stable=True)
    counts = torch.unique_consecutive(idxs[order], return_counts=True)[1].tolist()
    boxes, sorted_scores = boxes[order], scores[order]
    kept, start = [], 0
    for count in counts:
        end = start + count
        kept.append(nms(boxes[start:end], sorted_scores[start:end], iou_threshold) + start)
        start = end
    kept_mask = torch.zeros_like(idxs, dtype=torch.bool)
    kept_mask[order[torch.cat(kept)]] = True
    keep = kept_mask.nonzero().squeeze(1)  # in input order, for the stable sort
    return keep[torch.argsort(scores[keep], descending=True, stable=True)]


def batched_nms_top_k(
    boxes: Tensor,
    scores: Tensor,
    idxs: Tensor,
    iou_threshold: float,
    images: Tensor,
    num_images: int,
    k: int,
) -> Tensor:
    """`batched_nms`'s kept indices, on the host narrowed to those that can be among the `k`
    best kept boxes of their image (`images`: each box's image, below `num_images`; its
    categories `idxs` never span images); the top k, ties at the k-th score included, are
    exactly batched_nms's.

    Whether a box survives greedy NMS depends only on the boxes ranked before it, so NMS over
    an image's best boxes by score (ties by index) keeps exactly the boxes the full run keeps
    among them. Once an image's prefix keeps k boxes, the k-th scoring above every box left
    out, no box left out can reach its top k. A detector scores every proposal for every class
    (80k boxes per image at score threshold 0, most far below the 100 it keeps); this runs NMS
    on a few hundred per image instead. On a card each round's check would be one more wait
    for the host, so the full run runs there.
    """
    prefix = _PREFIX_PER_WANTED * k
    if k <= 0 or not on_host(boxes.device) or boxes.shape[0] <= prefix:
        return batched_nms(boxes, scores, idxs, iou_threshold)
    by_score = torch.sort(scores, descending=True, stable=True).indices
    rank = torch.empty_like(images)
    rank[by_score] = rank_within_groups(images[by_score], num_images)  # place in its image
    counts = group_sizes(images, num_images)
    while True:
        chosen = torch.nonzero(rank < prefix).squeeze(1)  # in input order: ties keep it
        keep = chosen[batched_nms(boxes[chosen], scores[chosen], idxs[chosen], iou_threshold)]
        if prefix >= int(counts.max()):
            return keep
        kept_images = images[keep]  # keep is in score order
        kept_rank = rank_within_groups(kept_images, num_images)
        kth = torch.full((num_images,), float("-inf"), dtype=torch.float64)
        kept_scores = scores[keep].double()
        kth.scatter_reduce_(0, kept_images, kept_scores.where(kept_rank == k - 1, kth[0]), "amax")
        left = rank == prefix  # each image's best box left out
        first_out = torch.full_like(kth, float("-inf"))
        first_out[images[left]] = scores[left].double()
        if bool(((kth > first_out) | (counts <= prefix)).all()):
            return keep
        prefix *= 4
