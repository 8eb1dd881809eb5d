"""RPN post-processing: per-level top-k, decode, clip, NMS, then the FPN's selection over levels.

All images and levels go through one decode and one batched NMS (groups = image x level), which
equals maskrcnn-benchmark's per-image, per-level loops.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rcnn.layers import batched_nms
from rcnn.modeling.box_coder import BoxCoder
from rcnn.modeling.utils import group_sizes, permute_and_flatten, rank_within_groups
from rcnn.structures.bounding_box import TO_REMOVE, BoxList
from rcnn.structures.boxlist_ops import cat_boxlist, legacy_nms_boxes


def first_in_groups(selected: torch.Tensor, groups: torch.Tensor, top_n: int) -> torch.Tensor:
    """`selected` narrowed to the first `top_n` selected elements of each group, in order, as
    a mask: no element is dropped, so nothing waits on the card for a count."""
    order = torch.argsort(groups, stable=True)
    chosen = selected[order].long()
    before = torch.cumsum(chosen, 0) - chosen  # selected elements before, over all groups
    first = torch.ones_like(groups, dtype=torch.bool)
    first[1:] = groups[order][1:] != groups[order][:-1]
    group_start = torch.cummax(torch.where(first, before, 0), 0).values
    narrowed = torch.empty_like(selected)
    narrowed[order] = selected[order] & (before - group_start < top_n)
    return narrowed


class RPNPostProcessor:
    """Turns RPN outputs into proposals (BoxLists with an "objectness" field), one per image."""

    def __init__(
        self,
        pre_nms_top_n: int,
        post_nms_top_n: int,
        nms_thresh: float,
        min_size: float,
        box_coder: BoxCoder,
        fpn_post_nms_top_n: int,
        fpn_post_nms_per_batch: bool = False,
        add_gt: bool = False,
    ) -> None:
        self.pre_nms_top_n = pre_nms_top_n
        self.post_nms_top_n = post_nms_top_n
        self.nms_thresh = nms_thresh
        self.min_size = min_size
        self.box_coder = box_coder
        self.fpn_post_nms_top_n = fpn_post_nms_top_n
        self.fpn_post_nms_per_batch = fpn_post_nms_per_batch
        self.add_gt = add_gt

    def _top_k_per_level(self, anchors, objectness, box_regression):
        scores, deltas, boxes, levels = [], [], [], []
        for level, (a, o, r) in enumerate(zip(anchors, objectness, box_regression, strict=True)):
            n, num_a, h, w = o.shape
            o = o.permute(0, 2, 3, 1).reshape(n, -1).sigmoid()
            r = permute_and_flatten(r, n, num_a, 4, h, w)
            k = min(self.pre_nms_top_n, o.shape[1])
            top_scores, top_idx = o.topk(k, dim=1, sorted=True)
            batch_idx = torch.arange(n, device=o.device)[:, None]
            scores.append(top_scores)
            deltas.append(r[batch_idx, top_idx])
            boxes.append(a[top_idx])
            levels.append(torch.full((k,), level, dtype=torch.int64, device=o.device))
        return torch.cat(scores, 1), torch.cat(deltas, 1), torch.cat(boxes, 1), torch.cat(levels)

    @torch.no_grad()
    def __call__(
        self,
        anchors: Sequence[torch.Tensor],
        objectness: Sequence[torch.Tensor],
        box_regression: Sequence[torch.Tensor],
        image_sizes: Sequence[tuple[int, int]],
        targets: Sequence[BoxList] | None = None,
    ) -> list[BoxList]:
        """anchors: per level [H*W*A, 4]; objectness/box_regression: per level [N, A(*4), H, W];
        image_sizes: (height, width) per image."""
        scores, deltas, boxes, levels = self._top_k_per_level(anchors, objectness, box_regression)
        n, k = scores.shape
        num_levels = len(anchors)
        proposals = self.box_coder.decode(deltas.reshape(-1, 4), boxes.reshape(-1, 4)).view(n, k, 4)

        sizes = torch.tensor(image_sizes, dtype=proposals.dtype, device=proposals.device)
        # cat/expand, not Tensor.repeat: repeat lowers to unfold, which plug-in devices lack
        max_xy = torch.cat((sizes.flip(1), sizes.flip(1)), dim=1)[:, None, :] - TO_REMOVE
        proposals = torch.minimum(proposals.clamp(min=0), max_xy)
        widths = proposals[..., 2] - proposals[..., 0] + TO_REMOVE
        heights = proposals[..., 3] - proposals[..., 1] + TO_REMOVE
        valid = ((widths >= self.min_size) & (heights >= self.min_size)).reshape(-1)
        valid = torch.nonzero(valid).squeeze(1)  # one wait for the boxes' count, not three

        image_idx = torch.arange(n, device=scores.device)[:, None].expand(n, k).reshape(-1)
        groups = (image_idx * num_levels + levels.expand(n, k).reshape(-1))[valid]
        flat_boxes = proposals.reshape(-1, 4)[valid]
        flat_scores = scores.reshape(-1)[valid]
        keep = batched_nms(legacy_nms_boxes(flat_boxes), flat_scores, groups, self.nms_thresh)
        # Which of NMS's kept boxes become proposals, as a mask over them (kept is sorted by
        # score): no count is needed on the host until the one read of the sizes per image.
        kept_groups = groups[keep]
        chosen = rank_within_groups(kept_groups, n * num_levels) < self.post_nms_top_n
        image_of_kept = kept_groups // num_levels
        if num_levels > 1:
            if self.fpn_post_nms_per_batch:
                # Training: the best proposals over the whole batch.
                chosen &= torch.cumsum(chosen, 0) <= self.fpn_post_nms_top_n
            else:
                chosen = first_in_groups(chosen, image_of_kept, self.fpn_post_nms_top_n)
        # Chosen boxes image by image (score order within an image), the rest after them.
        order = torch.argsort(torch.where(chosen, image_of_kept, n), stable=True)
        counts = group_sizes(image_of_kept, n, chosen).tolist()  # the stage's one read
        keep = keep[order[: sum(counts)]]
        results = []
        for i, idx in enumerate(keep.split(counts)):
            h, w = image_sizes[i]
            boxlist = BoxList(flat_boxes[idx], (w, h), mode="xyxy")
            boxlist.add_field("objectness", flat_scores[idx])
            results.append(boxlist)
        if self.add_gt and targets is not None:
            results = [self._add_gt_proposals(p, t) for p, t in zip(results, targets, strict=True)]
        return results

    @staticmethod
    def _add_gt_proposals(proposals: BoxList, target: BoxList) -> BoxList:
        # Ground-truth boxes join the proposals so the box head always sees positives.
        gt = target.convert("xyxy").copy_with_fields([])
        gt = BoxList(gt.bbox.to(proposals.bbox.device), proposals.size, "xyxy")
        gt.add_field("objectness", torch.ones(len(gt), device=proposals.bbox.device))
        return cat_boxlist([proposals, gt])
