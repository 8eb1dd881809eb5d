"""Box head training: match proposals to ground truth, sample them, classification + box loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from rcnn.layers import smooth_l1_loss
from rcnn.modeling.balanced_positive_negative_sampler import BalancedPositiveNegativeSampler
from rcnn.modeling.box_coder import BoxCoder
from rcnn.modeling.matcher import Matcher
from rcnn.structures.bounding_box import BoxList
from rcnn.structures.boxlist_ops import boxlist_iou


class FastRCNNLossComputation:
    """`subsample` picks the proposals to train on (and stores their labels and regression
    targets on them); calling the object computes the losses for those proposals.

    Normalisation as maskrcnn-benchmark: cross-entropy is the mean over sampled proposals; the
    smooth-L1 (beta 1) box loss is summed over positives and divided by the number sampled.
    """

    def __init__(
        self,
        proposal_matcher: Matcher,
        fg_bg_sampler: BalancedPositiveNegativeSampler,
        box_coder: BoxCoder,
        cls_agnostic_bbox_reg: bool = False,
        smooth_l1_beta: float = 1.0,
    ) -> None:
        self.proposal_matcher = proposal_matcher
        self.fg_bg_sampler = fg_bg_sampler
        self.box_coder = box_coder
        self.cls_agnostic_bbox_reg = cls_agnostic_bbox_reg
        self.smooth_l1_beta = smooth_l1_beta

    def _prepare_targets(self, proposal: BoxList, target: BoxList):
        matched_idxs = self.proposal_matcher(boxlist_iou(target, proposal))
        gt_labels = target.get_field("labels").to(torch.int64)
        labels = gt_labels[matched_idxs.clamp(min=0)] if len(target) else matched_idxs.clamp(min=0)
        labels[matched_idxs == Matcher.BELOW_LOW_THRESHOLD] = 0
        labels[matched_idxs == Matcher.BETWEEN_THRESHOLDS] = -1
        return labels, matched_idxs

    @torch.no_grad()
    def subsample(self, proposals: Sequence[BoxList], targets: Sequence[BoxList]) -> list[BoxList]:
        """Sampled proposals per image, with fields "labels" and "regression_targets"."""
        prepared = [
            self._prepare_targets(p, t.convert("xyxy"))
            for p, t in zip(proposals, targets, strict=True)
        ]
        pos_masks, neg_masks = self.fg_bg_sampler([labels for labels, _ in prepared])
        sampled = []
        for proposal, target, (labels, matched), pos, neg in zip(
            proposals, targets, prepared, pos_masks, neg_masks, strict=True
        ):
            idx = torch.nonzero(pos | neg).squeeze(1)
            proposal = proposal[idx]
            gt = target.convert("xyxy").bbox
            matched_boxes = gt[matched[idx].clamp(min=0)] if len(target) else proposal.bbox
            proposal.add_field("labels", labels[idx])
            proposal.add_field("regression_targets",
                               self.box_coder.encode(matched_boxes, proposal.bbox))
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
        box_loss = smooth_l1_loss(
            box_regression[pos[:, None], cols], regression_targets[pos],
            beta=self.smooth_l1_beta, size_average=False,
        ) / labels.numel()
        return classification_loss, box_loss
