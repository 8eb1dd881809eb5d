"""Box head training: match proposals to ground truth, sample them, classification + box loss."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F

from rcnn.layers import smooth_l1_loss
from rcnn.modeling.balanced_positive_negative_sampler import BalancedPositiveNegativeSampler
from rcnn.modeling.box_coder import BoxCoder
from rcnn.modeling.iou_balanced_sampler import IoUBalancedSampler
from rcnn.modeling.matcher import Matcher
from rcnn.structures.bounding_box import BoxList
from rcnn.structures.boxlist_ops import boxlist_iou


class FastRCNNLossComputation:
    """`subsample` picks the proposals to train on (and stores their labels and regression
    targets on them); calling the object computes the losses for those proposals.

    Normalisation as maskrcnn-benchmark: cross-entropy is the mean over sampled proposals; the
    smooth-L1 (beta 1) box loss is summed over positives and divided by the number sampled.
    `box_loss(pred, target)`, if given, replaces that smooth L1 and must return the sum.
    """

    def __init__(
        self,
        proposal_matcher: Matcher,
        fg_bg_sampler: BalancedPositiveNegativeSampler | IoUBalancedSampler,
        box_coder: BoxCoder,
        cls_agnostic_bbox_reg: bool = False,
        smooth_l1_beta: float = 1.0,
        box_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.proposal_matcher = proposal_matcher
        self.fg_bg_sampler = fg_bg_sampler
        self.box_coder = box_coder
        self.cls_agnostic_bbox_reg = cls_agnostic_bbox_reg
        self.box_loss = box_loss or partial(smooth_l1_loss, beta=smooth_l1_beta, size_average=False)

    def _prepare_targets(self, proposal: BoxList, target: BoxList):
        match_quality = boxlist_iou(target, proposal)
        matched_idxs = self.proposal_matcher(match_quality)
        gt_labels = target.get_field("labels").to(torch.int64)
        labels = gt_labels[matched_idxs.clamp(min=0)] if len(target) else matched_idxs.clamp(min=0)
        labels[matched_idxs == Matcher.BELOW_LOW_THRESHOLD] = 0
        labels[matched_idxs == Matcher.BETWEEN_THRESHOLDS] = -1
        # The IoU-balanced sampler bins negatives by their best IoU with any ground truth.
        max_ious = (
            match_quality.max(dim=0).values
            if len(target)
            else match_quality.new_zeros(len(proposal))
        )
        return labels, matched_idxs, max_ious

    @torch.no_grad()
    def subsample(self, proposals: Sequence[BoxList], targets: Sequence[BoxList]) -> list[BoxList]:
        """Sampled proposals per image, with fields "labels" and "regression_targets"."""
        prepared = [
            self._prepare_targets(p, t.convert("xyxy"))
            for p, t in zip(proposals, targets, strict=True)
        ]
        per_image_labels = [labels for labels, _, _ in prepared]
        # Only the IoU-balanced sampler needs the best IoUs and the matched ground truths.
        if isinstance(self.fg_bg_sampler, IoUBalancedSampler):
            pos_masks, neg_masks = self.fg_bg_sampler(
                per_image_labels,
                [ious for _, _, ious in prepared],
                [matched for _, matched, _ in prepared],
            )
        else:
            pos_masks, neg_masks = self.fg_bg_sampler(per_image_labels)
        sampled = []
        for proposal, target, (labels, matched, _), pos, neg in zip(
            proposals, targets, prepared, pos_masks, neg_masks, strict=True
        ):
            idx = torch.nonzero(pos | neg).squeeze(1)
            proposal = proposal[idx]
            gt = target.convert("xyxy").bbox
            matched_boxes = gt[matched[idx].clamp(min=0)] if len(target) else proposal.bbox
            proposal.add_field("labels", labels[idx])
            proposal.add_field(
                "regression_targets", self.box_coder.encode(matched_boxes, proposal.bbox)
            )
            sampled.append(proposal)
        return sampled

    def __call__(
        self,
        class_logits: torch.Tensor,
        box_regression: torch.Tensor,
        proposals: Sequence[BoxList],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.cat([p.get_field("labels") for p in proposals])
        regression_targets = torch.cat([p.get_field("regression_targets") for p in proposals])
        classification_loss = F.cross_entropy(class_logits, labels)

        pos = torch.nonzero(labels > 0).squeeze(1)
        first = 4 if self.cls_agnostic_bbox_reg else 4 * labels[pos]
        cols = torch.as_tensor(first, device=labels.device).reshape(-1, 1) + torch.arange(
            4, device=labels.device
        )
        box_loss = (
            self.box_loss(box_regression[pos[:, None], cols], regression_targets[pos])
            / labels.numel()
        )
        return classification_loss, box_loss
