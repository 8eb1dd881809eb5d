"""Mask head feature extractors: pooled ROI features -> a conv feature map per box."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rcnn.modeling.poolers import Pooler
from rcnn.modeling.registry import Registry
from rcnn.structures.bounding_box import BoxList

ROI_MASK_FEATURE_EXTRACTORS = Registry("mask feature extractor (ROI_MASK_HEAD.FEATURE_EXTRACTOR)")


def make_conv3x3(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Conv2d:
    """3x3 conv that keeps the spatial size, with maskrcnn-benchmark's mask-head init."""
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return conv


class MaskRCNNFPNFeatureExtractor(nn.Module):
    """Multi-level ROIAlign, then 3x3 convs mask_fcn1..n with ReLU (256 wide x 4 in R-50-FPN)."""

    def __init__(
        self, in_channels: int, pooler: Pooler, conv_layers: Sequence[int], dilation: int = 1
    ) -> None:
        super().__init__()
        self.pooler = pooler
        self.blocks: list[str] = []
        next_channels = in_channels
        for idx, channels in enumerate(conv_layers, 1):
            name = f"mask_fcn{idx}"
            self.add_module(name, make_conv3x3(next_channels, channels, dilation))
            self.blocks.append(name)
            next_channels = channels
        self.out_channels = next_channels

    def forward(self, x: Sequence[torch.Tensor], proposals: Sequence[BoxList]) -> torch.Tensor:
        x = self.pooler(x, proposals)
        for name in self.blocks:
            x = F.relu(getattr(self, name)(x))
        return x


@ROI_MASK_FEATURE_EXTRACTORS.register("MaskRCNNFPNFeatureExtractor")
def build_mask_fpn_feature_extractor(cfg, in_channels: int) -> MaskRCNNFPNFeatureExtractor:
    head = cfg.MODEL.ROI_MASK_HEAD
    if head.USE_GN:
        raise ValueError("MODEL.ROI_MASK_HEAD.USE_GN is not supported")
    pooler = Pooler(head.POOLER_RESOLUTION, head.POOLER_SCALES, head.POOLER_SAMPLING_RATIO)
    return MaskRCNNFPNFeatureExtractor(in_channels, pooler, head.CONV_LAYERS, head.DILATION)
