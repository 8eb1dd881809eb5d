"""Mask predictors: the mask feature map -> per-class mask logits at twice its resolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rcnn.modeling.registry import Registry

ROI_MASK_PREDICTOR = Registry("mask predictor (MODEL.ROI_MASK_HEAD.PREDICTOR)")


class MaskRCNNC4Predictor(nn.Module):
    """conv5_mask (2x2 stride-2 transposed conv) + ReLU, then mask_fcn_logits (1x1) to
    num_classes channels: [K, C, 14, 14] -> [K, num_classes, 28, 28]."""

    def __init__(self, in_channels: int, dim_reduced: int, num_classes: int) -> None:
        super().__init__()
        self.conv5_mask = nn.ConvTranspose2d(in_channels, dim_reduced, 2, 2, 0)
        self.mask_fcn_logits = nn.Conv2d(dim_reduced, num_classes, 1, 1, 0)
        for layer in (self.conv5_mask, self.mask_fcn_logits):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask_fcn_logits(F.relu(self.conv5_mask(x)))


@ROI_MASK_PREDICTOR.register("MaskRCNNC4Predictor")
def build_mask_rcnn_c4_predictor(cfg, in_channels: int) -> MaskRCNNC4Predictor:
    return MaskRCNNC4Predictor(
        in_channels, cfg.MODEL.ROI_MASK_HEAD.CONV_LAYERS[-1], cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES
    )
