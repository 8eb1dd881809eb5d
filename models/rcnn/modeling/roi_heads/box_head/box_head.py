"""The box head: feature extractor, predictor, post-processor (test) and loss (train)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import nn

from rcnn.layers import balanced_l1_loss
from rcnn.modeling.balanced_positive_negative_sampler import BalancedPositiveNegativeSampler
from rcnn.modeling.box_coder import BoxCoder
from rcnn.modeling.iou_balanced_sampler import IoUBalancedSampler
from rcnn.modeling.matcher import Matcher
from rcnn.modeling.registry import ROI_BOX_FEATURE_EXTRACTORS, ROI_BOX_PREDICTOR
from rcnn.modeling.roi_heads.box_head import (  # noqa: F401  (imported to register them)
    roi_box_feature_extractors,
    roi_box_predictors,
)
from rcnn.modeling.roi_heads.box_head.inference import PostProcessor
from rcnn.modeling.roi_heads.box_head.loss import FastRCNNLossComputation
from rcnn.structures.bounding_box import BoxList


class ROIBoxHead(nn.Module):
    """forward -> (box features, proposals in train / detections in test, losses).

    Later heads (mask) receive the returned features and boxes: in training, the sampled
    proposals with their "labels"; in test, the detections.
    """

    def __init__(
        self,
        feature_extractor: nn.Module,
        predictor: nn.Module,
        post_processor: PostProcessor,
        loss_evaluator: FastRCNNLossComputation,
    ) -> None:
        super().__init__()
        self.feature_extractor = feature_extractor
        self.predictor = predictor
        self.post_processor = post_processor
        self.loss_evaluator = loss_evaluator

    def forward(
        self,
        features: Sequence[torch.Tensor],
        proposals: Sequence[BoxList],
        targets: Sequence[BoxList] | None = None,
    ) -> tuple[torch.Tensor, list[BoxList], dict[str, torch.Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError("the box head needs targets in training mode")
            proposals = self.loss_evaluator.subsample(proposals, targets)
        x = self.feature_extractor(features, proposals)
        class_logits, box_regression = self.predictor(x)
        if not self.training:
            return x, self.post_processor(class_logits, box_regression, proposals), {}
        loss_classifier, loss_box_reg = self.loss_evaluator(class_logits, box_regression, proposals)
        losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
        return x, list(proposals), losses


def build_roi_box_head(cfg, in_channels: int) -> ROIBoxHead:
    """The box head from MODEL.ROI_HEADS.* and MODEL.ROI_BOX_HEAD.*."""
    rh, bh = cfg.MODEL.ROI_HEADS, cfg.MODEL.ROI_BOX_HEAD
    feature_extractor = ROI_BOX_FEATURE_EXTRACTORS[bh.FEATURE_EXTRACTOR](cfg, in_channels)
    predictor = ROI_BOX_PREDICTOR[bh.PREDICTOR](cfg, feature_extractor.out_channels)
    box_coder = BoxCoder(weights=tuple(rh.BBOX_REG_WEIGHTS))
    agnostic = cfg.MODEL.CLS_AGNOSTIC_BBOX_REG
    post_processor = PostProcessor(
        rh.SCORE_THRESH, rh.NMS, rh.DETECTIONS_PER_IMG, box_coder, agnostic
    )
    loss_evaluator = FastRCNNLossComputation(
        Matcher(rh.FG_IOU_THRESHOLD, rh.BG_IOU_THRESHOLD, allow_low_quality_matches=False),
        _build_sampler(rh),
        box_coder,
        agnostic,
        box_loss=_build_box_loss(bh),
    )
    return ROIBoxHead(feature_extractor, predictor, post_processor, loss_evaluator)


def _build_sampler(rh) -> BalancedPositiveNegativeSampler | IoUBalancedSampler:
    """MODEL.ROI_HEADS.SAMPLER: "random" or Libra R-CNN's "iou_balanced"."""
    if rh.SAMPLER == "random":
        return BalancedPositiveNegativeSampler(rh.BATCH_SIZE_PER_IMAGE, rh.POSITIVE_FRACTION)
    iou = rh.IOU_BALANCED
    # Negatives are the proposals below BG_IOU_THRESHOLD, so the bins end there.
    return IoUBalancedSampler(
        rh.BATCH_SIZE_PER_IMAGE,
        rh.POSITIVE_FRACTION,
        rh.BG_IOU_THRESHOLD,
        iou.NUM_BINS,
        iou.FLOOR_THR,
        iou.FLOOR_FRACTION,
    )


def _build_box_loss(bh) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """MODEL.ROI_BOX_HEAD.LOSS: None (the loss's smooth L1) or Libra R-CNN's balanced L1."""
    if bh.LOSS == "smooth_l1":
        return None
    b = bh.BALANCED_L1
    return partial(balanced_l1_loss, beta=b.BETA, alpha=b.ALPHA, gamma=b.GAMMA, reduction="sum")
