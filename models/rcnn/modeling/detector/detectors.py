"""build_detection_model: the detector a config describes."""

from __future__ import annotations

from rcnn.modeling.backbone import build_backbone
from rcnn.modeling.detector.generalized_rcnn import GeneralizedRCNN
from rcnn.modeling.roi_heads import build_roi_heads
from rcnn.modeling.rpn import build_rpn

_DETECTION_META_ARCHITECTURES = {"GeneralizedRCNN": GeneralizedRCNN}


def build_detection_model(cfg) -> GeneralizedRCNN:
    """Backbone, RPN and ROI heads from cfg.MODEL.*; the only place that reads the config."""
    arch = cfg.MODEL.META_ARCHITECTURE
    if arch not in _DETECTION_META_ARCHITECTURES:
        raise ValueError(
            f"MODEL.META_ARCHITECTURE {arch!r} unknown; known: "
            f"{sorted(_DETECTION_META_ARCHITECTURES)}"
        )
    if cfg.MODEL.RETINANET_ON:
        raise ValueError("MODEL.RETINANET_ON is not supported")
    backbone = build_backbone(cfg)
    rpn = build_rpn(cfg, backbone.out_channels)
    roi_heads = build_roi_heads(cfg, backbone.out_channels)
    return _DETECTION_META_ARCHITECTURES[arch](backbone, rpn, roi_heads)
