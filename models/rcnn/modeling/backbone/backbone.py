"""build_backbone: ResNet/ResNeXt body + FPN, chosen by MODEL.BACKBONE.CONV_BODY."""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

from torch import nn

from rcnn.modeling.backbone.bfp import build_balanced_feature_pyramid
from rcnn.modeling.backbone.fpn import FPN, LastLevelMaxPool
from rcnn.modeling.backbone.resnet import STAGE_SPECS, ResNet, group_norm, make_norm
from rcnn.modeling.registry import BACKBONES, RESNET_BLOCKS, RESNET_STEMS


def build_resnet_body(cfg, depth: int) -> ResNet:
    """The ResNet body of `depth` from MODEL.RESNETS.* and MODEL.BACKBONE.FREEZE_CONV_BODY_AT."""
    r, gn = cfg.MODEL.RESNETS, cfg.MODEL.GROUP_NORM
    return ResNet(
        STAGE_SPECS[depth],
        RESNET_BLOCKS[r.TRANS_FUNC],
        stem_out_channels=r.STEM_OUT_CHANNELS,
        res2_out_channels=r.RES2_OUT_CHANNELS,
        num_groups=r.NUM_GROUPS,
        width_per_group=r.WIDTH_PER_GROUP,
        stride_in_1x1=r.STRIDE_IN_1X1,
        res5_dilation=r.RES5_DILATION,
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_CONV_BODY_AT,
        norm=make_norm(r.TRANS_FUNC, r.STEM_FUNC, gn.NUM_GROUPS, gn.DIM_PER_GP, gn.EPSILON),
        stem=RESNET_STEMS[r.STEM_FUNC],
    )


def _resnet_fpn(cfg, depth: int) -> nn.Sequential:
    if cfg.MODEL.FPN.USE_RELU:
        raise ValueError("MODEL.FPN.USE_RELU is not supported")
    body = build_resnet_body(cfg, depth)
    gn = cfg.MODEL.GROUP_NORM
    fpn_norm = (
        partial(group_norm, num_groups=gn.NUM_GROUPS, dim_per_group=gn.DIM_PER_GP, eps=gn.EPSILON)
        if cfg.MODEL.FPN.USE_GN
        else None
    )
    fpn = FPN(
        body.out_channels, cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS, LastLevelMaxPool(), fpn_norm
    )
    stages = [("body", body), ("fpn", fpn)]
    if cfg.MODEL.BFP.ON:
        # Libra R-CNN: the balanced pyramid refines the FPN's levels (C2..C5 + the P6 pool).
        stages.append(
            (
                "bfp",
                build_balanced_feature_pyramid(cfg, fpn.out_channels, len(body.out_channels) + 1),
            )
        )
    model = nn.Sequential(OrderedDict(stages))
    model.out_channels = fpn.out_channels
    return model


# X-101-32x8d-FPN etc. are R-101-FPN with NUM_GROUPS / WIDTH_PER_GROUP set, as in the configs.
for _name, _depth in (
    ("R-18-FPN", 18),
    ("R-34-FPN", 34),
    ("R-50-FPN", 50),
    ("R-101-FPN", 101),
    ("R-152-FPN", 152),
):
    BACKBONES.register(_name)(lambda cfg, _d=_depth: _resnet_fpn(cfg, _d))


def build_backbone(cfg) -> nn.Module:
    """The backbone module; it has `.out_channels` and returns a list of feature maps."""
    return BACKBONES[cfg.MODEL.BACKBONE.CONV_BODY](cfg)
