"""Box <-> delta coding (R-CNN parameterisation) with the legacy +1 widths."""

from __future__ import annotations

import math

import torch

from rcnn.structures.bounding_box import TO_REMOVE


class BoxCoder:
    """Encodes boxes as (dx, dy, dw, dh) relative to reference boxes, scaled by `weights`."""

    def __init__(
        self,
        weights: tuple[float, float, float, float],
        bbox_xform_clip: float = math.log(1000.0 / 16),
    ) -> None:
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = bbox_xform_clip

    def encode(self, reference_boxes: torch.Tensor, proposals: torch.Tensor) -> torch.Tensor:
        """Deltas [N, 4] that take `proposals` to `reference_boxes` (both xyxy [N, 4])."""
        ex_widths = proposals[:, 2] - proposals[:, 0] + TO_REMOVE
        ex_heights = proposals[:, 3] - proposals[:, 1] + TO_REMOVE
        ex_ctr_x = proposals[:, 0] + 0.5 * ex_widths
        ex_ctr_y = proposals[:, 1] + 0.5 * ex_heights

        gt_widths = reference_boxes[:, 2] - reference_boxes[:, 0] + TO_REMOVE
        gt_heights = reference_boxes[:, 3] - reference_boxes[:, 1] + TO_REMOVE
        gt_ctr_x = reference_boxes[:, 0] + 0.5 * gt_widths
        gt_ctr_y = reference_boxes[:, 1] + 0.5 * gt_heights

        wx, wy, ww, wh = self.weights
        return torch.stack(
            (
                wx * (gt_ctr_x - ex_ctr_x) / ex_widths,
                wy * (gt_ctr_y - ex_ctr_y) / ex_heights,
                ww * torch.log(gt_widths / ex_widths),
                wh * torch.log(gt_heights / ex_heights),
            ),
            dim=1,
        )

    def decode(self, rel_codes: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Apply deltas [N, 4*K] to boxes [N, 4]; returns xyxy boxes [N, 4*K]."""
        boxes = boxes.to(rel_codes.dtype)
        widths = boxes[:, 2:3] - boxes[:, 0:1] + TO_REMOVE
        heights = boxes[:, 3:4] - boxes[:, 1:2] + TO_REMOVE
        ctr_x = boxes[:, 0:1] + 0.5 * widths
        ctr_y = boxes[:, 1:2] + 0.5 * heights

        wx, wy, ww, wh = self.weights
        dx = rel_codes[:, 0::4] / wx
        dy = rel_codes[:, 1::4] / wy
        # Clamp so exp() cannot overflow on wild early-training deltas.
        dw = (rel_codes[:, 2::4] / ww).clamp(max=self.bbox_xform_clip)
        dh = (rel_codes[:, 3::4] / wh).clamp(max=self.bbox_xform_clip)

        pred_ctr_x = dx * widths + ctr_x
        pred_ctr_y = dy * heights + ctr_y
        pred_w = torch.exp(dw) * widths
        pred_h = torch.exp(dh) * heights
        pred = torch.stack(
            (
                pred_ctr_x - 0.5 * pred_w,
                pred_ctr_y - 0.5 * pred_h,
                pred_ctr_x + 0.5 * pred_w - 1,
                pred_ctr_y + 0.5 * pred_h - 1,
            ),
            dim=2,
        )
        return pred.reshape(rel_codes.shape)
