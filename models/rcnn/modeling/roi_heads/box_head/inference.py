"""Box head inference: decode per-class boxes, threshold, per-class NMS, keep the top detections.

All images and classes go through one batched NMS (groups = image x class), which equals
maskrcnn-benchmark's per-image, per-class loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from rcnn.layers import batched_nms_top_k
from rcnn.modeling.box_coder import BoxCoder
from rcnn.modeling.utils import group_sizes
from rcnn.structures.bounding_box import TO_REMOVE, BoxList
from rcnn.structures.boxlist_ops import legacy_nms_boxes


class PostProcessor:
    """Detections per image: BoxLists with fields "scores" and "labels" (1..num_classes-1)."""

    def __init__(
        self,
        score_thresh: float = 0.05,
        nms: float = 0.5,
        detections_per_img: int = 100,
        box_coder: BoxCoder | None = None,
        cls_agnostic_bbox_reg: bool = False,
    ) -> None:
        self.score_thresh = score_thresh
        self.nms = nms
        self.detections_per_img = detections_per_img
        self.box_coder = box_coder or BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
        self.cls_agnostic_bbox_reg = cls_agnostic_bbox_reg

    @torch.no_grad()
    def __call__(
        self,
        class_logits: torch.Tensor,
        box_regression: torch.Tensor,
        boxes: Sequence[BoxList],
    ) -> list[BoxList]:
        class_prob = F.softmax(class_logits, -1)
        num_classes = class_prob.shape[1]
        concat_boxes = torch.cat([b.bbox for b in boxes])
        if self.cls_agnostic_bbox_reg:
            box_regression = box_regression[:, -4:]
        proposals = self.box_coder.decode(box_regression, concat_boxes)
        if self.cls_agnostic_bbox_reg:
            # expand, not Tensor.repeat: repeat lowers to unfold, which plug-in devices lack
            proposals = proposals[:, None, :].expand(-1, num_classes, 4)
        proposals = proposals.reshape(-1, num_classes, 4)

        # Clip every box to its own image.
        counts = [len(b) for b in boxes]
        image_idx = torch.repeat_interleave(
            torch.arange(len(boxes), device=concat_boxes.device),
            torch.tensor(counts, device=concat_boxes.device),
            output_size=sum(counts),  # known here: no wait on the card for it
        )
        sizes = torch.tensor(
            [b.size for b in boxes], dtype=proposals.dtype, device=proposals.device
        )
        max_xy = (torch.cat((sizes, sizes), dim=1) - TO_REMOVE)[image_idx][:, None, :]
        proposals = torch.minimum(proposals.clamp(min=0), max_xy)

        # Background (class 0) never yields detections. The candidates' count is the one
        # wait besides NMS's own and the read of the sizes per image.
        candidates = class_prob[:, 1:] > self.score_thresh
        rows, cls = candidates.nonzero(as_tuple=True)
        cls = cls + 1
        det_boxes = proposals[rows, cls]
        det_scores = class_prob[rows, cls]
        det_images = image_idx[rows]
        keep = batched_nms_top_k(
            legacy_nms_boxes(det_boxes),
            det_scores,
            det_images * num_classes + cls,
            self.nms,
            det_images,
            len(boxes),
            self.detections_per_img,
        )
        # Group by image; within an image keep the score order of NMS.
        keep = keep[torch.argsort(det_images[keep], stable=True)]
        images = det_images[keep]
        # Each image's detections first, then those past its top detections_per_img: one
        # host read of the piece sizes splits both, so the pieces cost no read per image.
        piece = images * 2 + self._past_top(images, det_scores[keep], len(boxes))
        keep = keep[torch.argsort(piece, stable=True)]
        sizes = group_sizes(piece, 2 * len(boxes)).tolist()

        results = []
        for box, idx in zip(boxes, keep.split(sizes)[::2], strict=True):
            result = BoxList(det_boxes[idx], box.size, mode="xyxy")
            result.add_field("scores", det_scores[idx])
            result.add_field("labels", cls[idx])
            results.append(result)
        return results

    def _past_top(
        self, images: torch.Tensor, scores: torch.Tensor, num_images: int
    ) -> torch.Tensor:
        """1 where a score is below its image's detections_per_img-th best, else 0 (ties are
        kept, as maskrcnn-benchmark); `images` sorted, scores in NMS order within an image."""
        if self.detections_per_img <= 0:
            return torch.zeros_like(images)
        counts = group_sizes(images, num_images)
        rank = (
            torch.arange(images.shape[0], device=images.device)
            - (counts.cumsum(0) - counts)[images]
        )
        at_kth = torch.where(rank == self.detections_per_img - 1, scores, float("-inf"))
        kth = scores.new_full((num_images,), float("-inf"))
        kth = kth.scatter_reduce(0, images, at_kth, reduce="amax")
        return (scores < kth[images]).long()
