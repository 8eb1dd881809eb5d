"""RPN losses: objectness BCE and smooth-L1 (beta 1/9) box regression over sampled anchors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from rcnn.layers import smooth_l1_loss
from rcnn.modeling.balanced_positive_negative_sampler import BalancedPositiveNegativeSampler
from rcnn.modeling.box_coder import BoxCoder
from rcnn.modeling.matcher import Matcher
from rcnn.modeling.utils import permute_and_flatten
from rcnn.structures.bounding_box import BoxList
from rcnn.structures.boxlist_ops import box_iou


def flatten_rpn_outputs(
    objectness: Sequence[torch.Tensor], box_regression: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-level head outputs -> objectness [N, A_total] and deltas [N, A_total, 4], in the
    anchor generator's order (level, then location, then anchor)."""
    obj, reg = [], []
    for o, r in zip(objectness, box_regression, strict=True):
        n, a, h, w = o.shape
        obj.append(o.permute(0, 2, 3, 1).reshape(n, -1))
        reg.append(permute_and_flatten(r, n, a, 4, h, w))
    return torch.cat(obj, 1), torch.cat(reg, 1)


class RPNLossComputation:
    """Labels anchors (1 fg, 0 bg, -1 ignored), samples them, and computes the two losses.

    Normalisation as maskrcnn-benchmark: BCE is the mean over sampled anchors; the box loss is
    summed over positives and divided by the number of sampled anchors.
    """

    def __init__(
        self,
        proposal_matcher: Matcher,
        fg_bg_sampler: BalancedPositiveNegativeSampler,
        box_coder: BoxCoder,
        smooth_l1_beta: float = 1.0 / 9,
    ) -> None:
        self.proposal_matcher = proposal_matcher
        self.fg_bg_sampler = fg_bg_sampler
        self.box_coder = box_coder
        self.smooth_l1_beta = smooth_l1_beta

    def _label_anchors(self, anchors, visibility, target):
        matched_idxs = self.proposal_matcher(box_iou(target.bbox, anchors))
        labels = (matched_idxs >= 0).to(torch.float32)
        labels[~visibility] = -1
        labels[matched_idxs == Matcher.BETWEEN_THRESHOLDS] = -1
        return labels, matched_idxs

    def __call__(
        self,
        anchors: Sequence[torch.Tensor],
        visibility: Sequence[torch.Tensor],
        objectness: Sequence[torch.Tensor],
        box_regression: Sequence[torch.Tensor],
        targets: Sequence[BoxList],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """anchors: per level [H*W*A, 4] (shared by the batch); visibility: per image [A_total]."""
        all_anchors = torch.cat(list(anchors), 0)
        labels, matched = [], []
        for vis, target in zip(visibility, targets, strict=True):
            lab, m = self._label_anchors(all_anchors, vis, target.convert("xyxy"))
            labels.append(lab)
            matched.append(m)
        pos_masks, neg_masks = self.fg_bg_sampler(labels)

        # Regression targets only for the sampled positives (the only ones the loss reads).
        pos_img, pos_anchor = torch.stack(pos_masks).nonzero(as_tuple=True)
        gt_boxes = torch.cat(
            [
                t.convert("xyxy").bbox[m[p].clamp(min=0)]
                for t, m, p in zip(targets, matched, pos_masks, strict=True)
            ]
        )
        regression_targets = self.box_coder.encode(gt_boxes, all_anchors[pos_anchor])

        obj, reg = flatten_rpn_outputs(objectness, box_regression)
        sampled = torch.stack(pos_masks) | torch.stack(neg_masks)
        num_sampled = sampled.sum().clamp(min=1)  # a tensor: no host read per step
        box_loss = (
            smooth_l1_loss(
                reg[pos_img, pos_anchor],
                regression_targets,
                beta=self.smooth_l1_beta,
                size_average=False,
            )
            / num_sampled
        )
        objectness_loss = F.binary_cross_entropy_with_logits(
            obj[sampled], torch.stack(labels)[sampled]
        )
        return objectness_loss, box_loss
