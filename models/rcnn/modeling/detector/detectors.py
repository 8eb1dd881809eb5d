"""build_detection_model: the detector a config describes."""

from __future__ import annotations

from rcnn.compat import compile_unavailable_reason
from rcnn.modeling.backbone import build_backbone
from rcnn.modeling.detector.generalized_rcnn import GeneralizedRCNN
from rcnn.modeling.roi_heads import build_roi_heads
from rcnn.modeling.rpn import build_rpn

_DETECTION_META_ARCHITECTURES = {"GeneralizedRCNN": GeneralizedRCNN}


def build_detection_model(
    cfg, compile_backend: str = "inductor", compile_shapes: str = "static"
) -> GeneralizedRCNN:
    """Backbone, RPN and ROI heads from cfg.MODEL.*; the only place that reads the config.

    With MODEL.COMPILE the backbone is compiled by `compile_backend` (the device adapter's
    supports_compile() names it) for MODEL.COMPILE_SHAPES, or else `compile_shapes` (the
    adapter's): "static" or "dynamic"."""
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
    model = _DETECTION_META_ARCHITECTURES[arch](
        backbone, rpn, roi_heads, channels_last=cfg.MODEL.CHANNELS_LAST
    )
    if cfg.MODEL.COMPILE:
        reason = compile_unavailable_reason()
        if reason is not None:
            raise ValueError(f"MODEL.COMPILE: {reason}")
        # In place, so state-dict names stay; static: one graph per padded input size (the
        # data loader's shape buckets keep those few and known).
        dynamic = (cfg.MODEL.COMPILE_SHAPES or compile_shapes) == "dynamic"
        model.backbone.compile(backend=compile_backend, dynamic=dynamic)
    return model
