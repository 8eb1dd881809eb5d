"""The mask head: feature extractor, predictor, post-processor (test) and loss (train)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rcnn.modeling.matcher import Matcher
from rcnn.modeling.registry import ROI_HEADS
from rcnn.modeling.roi_heads.mask_head.inference import Masker, MaskPostProcessor
from rcnn.modeling.roi_heads.mask_head.loss import MaskRCNNLossComputation
from rcnn.modeling.roi_heads.mask_head.roi_mask_feature_extractors import (
    ROI_MASK_FEATURE_EXTRACTORS,
)
from rcnn.modeling.roi_heads.mask_head.roi_mask_predictors import ROI_MASK_PREDICTOR
from rcnn.structures.bounding_box import BoxList


def keep_only_positive_boxes(boxes: Sequence[BoxList]) -> list[BoxList]:
    """The proposals the box head labelled foreground (labels > 0), per image."""
    return [b[torch.nonzero(b.get_field("labels") > 0).squeeze(1)] for b in boxes]


class ROIMaskHead(nn.Module):
    """forward(features, boxes, targets) -> (mask features, boxes, losses).

    Training: `boxes` are the box head's sampled proposals with "labels"; only the positives get
    mask logits and the loss {"loss_mask"}; the proposals are handed on unchanged.
    Test: `boxes` are the detections; they come back with a "mask" field.
    """

    def __init__(
        self,
        feature_extractor: nn.Module,
        predictor: nn.Module,
        post_processor: MaskPostProcessor,
        loss_evaluator: MaskRCNNLossComputation,
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
        if not self.training:
            x = self.feature_extractor(features, proposals)
            return x, self.post_processor(self.predictor(x), proposals), {}
        if targets is None:
            raise ValueError("the mask head needs targets in training mode")
        positives = keep_only_positive_boxes(proposals)
        x = self.feature_extractor(features, positives)
        loss_mask = self.loss_evaluator(positives, self.predictor(x), targets)
        return x, list(proposals), {"loss_mask": loss_mask}


@ROI_HEADS.register("mask")
def build_roi_mask_head(cfg, in_channels: int) -> ROIMaskHead:
    """The mask head from MODEL.ROI_MASK_HEAD.* (and the ROI_HEADS matching thresholds)."""
    head = cfg.MODEL.ROI_MASK_HEAD
    if head.SHARE_BOX_FEATURE_EXTRACTOR:
        raise ValueError(
            "MODEL.ROI_MASK_HEAD.SHARE_BOX_FEATURE_EXTRACTOR True needs the C4 box head, which is "
            "not built here; FPN configs set it False"
        )
    feature_extractor = ROI_MASK_FEATURE_EXTRACTORS[head.FEATURE_EXTRACTOR](cfg, in_channels)
    predictor = ROI_MASK_PREDICTOR[head.PREDICTOR](cfg, feature_extractor.out_channels)
    # Without POSTPROCESS_MASKS the model returns M x M probabilities and the evaluator pastes
    # them at the original image size, outside the timed window (engine/coco_eval.py).
    masker = Masker(head.POSTPROCESS_MASKS_THRESHOLD, padding=1) if head.POSTPROCESS_MASKS else None
    post_processor = MaskPostProcessor(masker)
    rh = cfg.MODEL.ROI_HEADS
    matcher = Matcher(rh.FG_IOU_THRESHOLD, rh.BG_IOU_THRESHOLD, allow_low_quality_matches=False)
    loss_evaluator = MaskRCNNLossComputation(matcher, head.RESOLUTION)
    return ROIMaskHead(feature_extractor, predictor, post_processor, loss_evaluator)
