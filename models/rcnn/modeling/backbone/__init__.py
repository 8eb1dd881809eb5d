"""Backbones: ResNet/ResNeXt bodies and the FPN."""

from rcnn.modeling.backbone.backbone import build_backbone

__all__ = ["build_backbone"]
