"""GeneralizedRCNN: backbone -> RPN -> ROI heads, the one detector class (Faster/Mask/Libra)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rcnn.structures.bounding_box import BoxList
from rcnn.structures.image_list import ImageList, to_image_list


class GeneralizedRCNN(nn.Module):
    """Training: returns the loss dict (loss_objectness, loss_rpn_box_reg, loss_classifier,
    loss_box_reg, ...). Inference: one BoxList per image with fields "scores" and "labels".

    Images are BGR 0-255 minus PIXEL_MEAN, as an ImageList or a list/batch of [C, H, W] tensors.
    """

    def __init__(
        self,
        backbone: nn.Module,
        rpn: nn.Module,
        roi_heads: nn.Module | None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.channels_last = channels_last
        if channels_last:
            backbone.to(memory_format=torch.channels_last)

    def forward(
        self,
        images: ImageList | torch.Tensor | Sequence[torch.Tensor],
        targets: Sequence[BoxList] | None = None,
    ) -> dict[str, torch.Tensor] | list[BoxList]:
        if self.training and targets is None:
            raise ValueError("in training mode, targets (one BoxList per image) are required")
        images = to_image_list(images)
        tensors = images.tensors
        if self.channels_last:
            tensors = tensors.contiguous(memory_format=torch.channels_last)
        features = self.backbone(tensors)
        proposals, proposal_losses = self.rpn(images, features, targets)
        if self.roi_heads is not None:
            _, result, detector_losses = self.roi_heads(features, proposals, targets)
        else:
            result, detector_losses = proposals, {}
        if self.training:
            return {**detector_losses, **proposal_losses}
        return result
