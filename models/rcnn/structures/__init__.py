"""Structures handed between stages: BoxList, ImageList (and segmentation masks)."""

from rcnn.structures.bounding_box import FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM, BoxList
from rcnn.structures.image_list import ImageList, to_image_list

__all__ = ["FLIP_LEFT_RIGHT", "FLIP_TOP_BOTTOM", "BoxList", "ImageList", "to_image_list"]
