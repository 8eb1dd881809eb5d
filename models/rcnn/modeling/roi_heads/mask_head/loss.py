"""Mask head training: per positive proposal, its ground-truth mask cropped to the proposal and
resized to M x M; binary cross-entropy on the mask logits of the ground-truth class."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from rcnn.modeling.matcher import Matcher
from rcnn.structures.bounding_box import BoxList
from rcnn.structures.boxlist_ops import boxlist_iou


class MaskRCNNLossComputation:
    """Proposals are re-matched to the ground truth (as maskrcnn-benchmark does) to find the
    instance whose mask is the target; targets need a "masks" field (SegmentationMask)."""

    def __init__(self, proposal_matcher: Matcher, discretization_size: int) -> None:
        self.proposal_matcher = proposal_matcher
        self.discretization_size = discretization_size

    def prepare_targets(
        self, proposals: Sequence[BoxList], targets: Sequence[BoxList]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels of all proposals (0 where unmatched) and the M x M targets of the positives."""
        labels, mask_targets = [], []
        for proposal, target in zip(proposals, targets, strict=True):
            if not target.has_field("masks"):
                raise ValueError(
                    "MODEL.MASK_ON: every training target needs a 'masks' field "
                    "(load the dataset with masks)"
                )
            masks = target.get_field("masks")
            if tuple(masks.size) != tuple(target.size):
                raise ValueError(
                    f"target masks are for an image of size {masks.size}, its boxes "
                    f"for {target.size}: transform masks together with the boxes"
                )
            proposal = proposal.convert("xyxy")
            matched = self.proposal_matcher(boxlist_iou(target.convert("xyxy"), proposal))
            gt_labels = target.get_field("labels").to(torch.int64)
            image_labels = (
                gt_labels[matched.clamp(min=0)] if len(target) else torch.zeros_like(matched)
            )
            image_labels[matched < 0] = 0
            positive = torch.nonzero(image_labels > 0).squeeze(1)
            mask_targets.append(
                masks[matched[positive]].crop_and_resize(
                    proposal.bbox[positive], self.discretization_size
                )
            )
            labels.append(image_labels)
        return torch.cat(labels), torch.cat(mask_targets)

    def __call__(
        self,
        proposals: Sequence[BoxList],
        mask_logits: torch.Tensor,
        targets: Sequence[BoxList],
    ) -> torch.Tensor:
        labels, mask_targets = self.prepare_targets(proposals, targets)
        positive = torch.nonzero(labels > 0).squeeze(1)
        if positive.numel() == 0:
            # No positives: a zero that still reaches every mask parameter (DDP needs them).
            return mask_logits.sum() * 0
        return F.binary_cross_entropy_with_logits(
            mask_logits[positive, labels[positive]], mask_targets.to(mask_logits.dtype)
        )
