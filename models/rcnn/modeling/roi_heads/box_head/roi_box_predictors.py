"""Box predictors: per-box class logits and class-specific (or agnostic) box deltas."""

from __future__ import annotations

import torch
from torch import nn

from rcnn.modeling.registry import ROI_BOX_PREDICTOR


class FPNPredictor(nn.Module):
    """cls_score [K, num_classes] and bbox_pred [K, 4 * (num_classes or 2 if agnostic)]."""

    def __init__(self, in_channels: int, num_classes: int, cls_agnostic_bbox_reg: bool = False):
        super().__init__()
        num_bbox_reg_classes = 2 if cls_agnostic_bbox_reg else num_classes
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, num_bbox_reg_classes * 4)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        for layer in (self.cls_score, self.bbox_pred):
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(1)
        return self.cls_score(x), self.bbox_pred(x)


@ROI_BOX_PREDICTOR.register("FPNPredictor")
def build_fpn_predictor(cfg, in_channels: int) -> FPNPredictor:
    return FPNPredictor(
        in_channels, cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES, cfg.MODEL.CLS_AGNOSTIC_BBOX_REG
    )
