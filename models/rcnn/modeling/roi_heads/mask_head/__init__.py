"""The mask head of Mask R-CNN (importing it registers ROI_HEADS["mask"])."""

from rcnn.modeling.roi_heads.mask_head.mask_head import ROIMaskHead, build_roi_mask_head

__all__ = ["ROIMaskHead", "build_roi_mask_head"]
