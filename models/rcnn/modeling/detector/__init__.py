"""Detectors."""

from rcnn.modeling.detector.detectors import build_detection_model
from rcnn.modeling.detector.generalized_rcnn import GeneralizedRCNN

__all__ = ["GeneralizedRCNN", "build_detection_model"]
