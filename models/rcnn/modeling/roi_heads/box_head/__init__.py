"""The box head of Fast/Faster R-CNN."""

from rcnn.modeling.roi_heads.box_head.box_head import ROIBoxHead, build_roi_box_head

__all__ = ["ROIBoxHead", "build_roi_box_head"]
