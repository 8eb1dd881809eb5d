"""CombinedROIHeads: the box head, then any extra heads (mask, keypoint) on its boxes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from rcnn.modeling.registry import ROI_HEADS
from rcnn.modeling.roi_heads import mask_head  # noqa: F401  (registers ROI_HEADS["mask"])
from rcnn.modeling.roi_heads.box_head import build_roi_box_head
from rcnn.structures.bounding_box import BoxList

# Extra heads and the config switch that turns each on; builders come from registry.ROI_HEADS.
EXTRA_HEADS = (("mask", "MASK_ON"), ("keypoint", "KEYPOINT_ON"))


class CombinedROIHeads(nn.ModuleDict):
    """Runs heads["box"] first; every other head gets (features, the box head's boxes, targets)
    and returns (x, boxes, losses) like the box head. State names: roi_heads.<head>.*.

    Heads never share the box head's feature extractor: that is the C4 layout, which the mask
    head's builder refuses (MODEL.ROI_MASK_HEAD.SHARE_BOX_FEATURE_EXTRACTOR).
    """

    def __init__(self, heads: Mapping[str, nn.Module]):
        super().__init__(heads)
        if "box" not in self:
            raise ValueError("CombinedROIHeads needs a 'box' head")

    def forward(
        self,
        features: Sequence[torch.Tensor],
        proposals: Sequence[BoxList],
        targets: Sequence[BoxList] | None = None,
    ) -> tuple[torch.Tensor, list[BoxList], dict[str, torch.Tensor]]:
        losses: dict[str, torch.Tensor] = {}
        box_features, detections, box_losses = self["box"](features, proposals, targets)
        losses.update(box_losses)
        x = box_features
        for name, head in self.items():
            if name == "box":
                continue
            x, detections, head_losses = head(features, detections, targets)
            losses.update(head_losses)
        return x, detections, losses


def build_roi_heads(cfg, in_channels: int) -> CombinedROIHeads | None:
    """None for an RPN-only model; else the box head plus the heads the config turns on."""
    if cfg.MODEL.RPN_ONLY:
        return None
    heads: dict[str, nn.Module] = {"box": build_roi_box_head(cfg, in_channels)}
    for name, switch in EXTRA_HEADS:
        if getattr(cfg.MODEL, switch):
            heads[name] = ROI_HEADS[name](cfg, in_channels)
    return CombinedROIHeads(heads)
