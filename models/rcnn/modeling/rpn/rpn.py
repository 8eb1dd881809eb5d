"""Region Proposal Network: head, anchors, proposal selection and losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rcnn.modeling.balanced_positive_negative_sampler import BalancedPositiveNegativeSampler
from rcnn.modeling.box_coder import BoxCoder
from rcnn.modeling.matcher import Matcher
from rcnn.modeling.registry import RPN_HEADS
from rcnn.modeling.rpn.anchor_generator import AnchorGenerator, build_anchor_generator
from rcnn.modeling.rpn.inference import RPNPostProcessor
from rcnn.modeling.rpn.loss import RPNLossComputation
from rcnn.structures.bounding_box import BoxList
from rcnn.structures.image_list import ImageList


@RPN_HEADS.register("SingleConvRPNHead")
class RPNHead(nn.Module):
    """A shared 3x3 conv + ReLU, then per-anchor objectness logits and box deltas."""

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, 1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, x: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, bbox_reg = [], []
        for feature in x:
            # in place: a fresh 256-channel map per level (P2's is the largest of the head)
            t = F.relu(self.conv(feature), inplace=True)
            logits.append(self.cls_logits(t))
            bbox_reg.append(self.bbox_pred(t))
        return logits, bbox_reg


class RPN(nn.Module):
    """Proposals per image (BoxLists with "objectness") and, in training, the RPN losses."""

    def __init__(
        self,
        anchor_generator: AnchorGenerator,
        head: nn.Module,
        box_selector_train: RPNPostProcessor,
        box_selector_test: RPNPostProcessor,
        loss_evaluator: RPNLossComputation,
    ) -> None:
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.box_selector_train = box_selector_train
        self.box_selector_test = box_selector_test
        self.loss_evaluator = loss_evaluator

    def forward(
        self,
        images: ImageList,
        features: list[torch.Tensor],
        targets: list[BoxList] | None = None,
    ) -> tuple[list[BoxList], dict[str, torch.Tensor]]:
        objectness, rpn_box_regression = self.head(features)
        anchors = self.anchor_generator(features)
        if not self.training:
            boxes = self.box_selector_test(
                anchors, objectness, rpn_box_regression, images.image_sizes
            )
            return boxes, {}
        if targets is None:
            raise ValueError("the RPN needs targets in training mode")
        boxes = self.box_selector_train(
            anchors, objectness, rpn_box_regression, images.image_sizes, targets
        )
        all_anchors = torch.cat(anchors, 0)
        visibility = [self.anchor_generator.visibility(all_anchors, s) for s in images.image_sizes]
        loss_objectness, loss_rpn_box_reg = self.loss_evaluator(
            anchors, visibility, objectness, rpn_box_regression, targets
        )
        return boxes, {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_rpn_box_reg}


def build_rpn(cfg, in_channels: int) -> RPN:
    """The RPN from MODEL.RPN.* (train and test selectors differ only in their top-n)."""
    rpn = cfg.MODEL.RPN
    anchor_generator = build_anchor_generator(cfg)
    head = RPN_HEADS[rpn.RPN_HEAD](in_channels, anchor_generator.num_anchors_per_location()[0])
    box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    selector_args = {"nms_thresh": rpn.NMS_THRESH, "min_size": rpn.MIN_SIZE, "box_coder": box_coder}
    train = RPNPostProcessor(
        rpn.PRE_NMS_TOP_N_TRAIN,
        rpn.POST_NMS_TOP_N_TRAIN,
        fpn_post_nms_top_n=rpn.FPN_POST_NMS_TOP_N_TRAIN,
        fpn_post_nms_per_batch=rpn.FPN_POST_NMS_PER_BATCH,
        add_gt=True,
        **selector_args,
    )
    test = RPNPostProcessor(
        rpn.PRE_NMS_TOP_N_TEST,
        rpn.POST_NMS_TOP_N_TEST,
        fpn_post_nms_top_n=rpn.FPN_POST_NMS_TOP_N_TEST,
        **selector_args,
    )
    loss = RPNLossComputation(
        Matcher(rpn.FG_IOU_THRESHOLD, rpn.BG_IOU_THRESHOLD, allow_low_quality_matches=True),
        BalancedPositiveNegativeSampler(rpn.BATCH_SIZE_PER_IMAGE, rpn.POSITIVE_FRACTION),
        box_coder,
    )
    return RPN(anchor_generator, head, train, test, loss)
