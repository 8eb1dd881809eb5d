"""ROI heads: the box head and the extension point for mask/keypoint heads."""

from rcnn.modeling.roi_heads.roi_heads import CombinedROIHeads, build_roi_heads

__all__ = ["CombinedROIHeads", "build_roi_heads"]
