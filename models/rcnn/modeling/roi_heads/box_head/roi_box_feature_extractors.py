"""Box head feature extractors: pooled ROI features -> one vector per box."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rcnn.modeling.poolers import Pooler
from rcnn.modeling.registry import ROI_BOX_FEATURE_EXTRACTORS
from rcnn.structures.bounding_box import BoxList


def make_fc(dim_in: int, hidden_dim: int) -> nn.Linear:
    fc = nn.Linear(dim_in, hidden_dim)
    # maskrcnn-benchmark's init for MLP heads (caffe2's XavierFill-like uniform).
    nn.init.kaiming_uniform_(fc.weight, a=1)
    nn.init.zeros_(fc.bias)
    return fc


class FPN2MLPFeatureExtractor(nn.Module):
    """Multi-level ROIAlign, then two fully connected layers fc6, fc7 with ReLU."""

    def __init__(self, in_channels: int, pooler: Pooler, representation_size: int) -> None:
        super().__init__()
        self.pooler = pooler
        resolution = pooler.output_size[0] * pooler.output_size[1]
        self.fc6 = make_fc(in_channels * resolution, representation_size)
        self.fc7 = make_fc(representation_size, representation_size)
        self.out_channels = representation_size

    def forward(self, x: Sequence[torch.Tensor], proposals: Sequence[BoxList]) -> torch.Tensor:
        x = self.pooler(x, proposals).flatten(1)
        x = F.relu(self.fc6(x))
        return F.relu(self.fc7(x))


@ROI_BOX_FEATURE_EXTRACTORS.register("FPN2MLPFeatureExtractor")
def build_fpn2mlp_feature_extractor(cfg, in_channels: int) -> FPN2MLPFeatureExtractor:
    head = cfg.MODEL.ROI_BOX_HEAD
    if head.USE_GN:
        raise ValueError("MODEL.ROI_BOX_HEAD.USE_GN is not supported")
    pooler = Pooler(head.POOLER_RESOLUTION, head.POOLER_SCALES, head.POOLER_SAMPLING_RATIO)
    return FPN2MLPFeatureExtractor(in_channels, pooler, head.MLP_HEAD_DIM)
