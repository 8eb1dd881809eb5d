"""Transforms applied to (image, target) pairs, and their builder."""

from rcnn.data.transforms.build import build_transforms
from rcnn.data.transforms.transforms import (
    ColorJitter,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    RandomVerticalFlip,
    Resize,
    ToTensor,
    get_size,
)

__all__ = [
    "ColorJitter",
    "Compose",
    "Normalize",
    "RandomHorizontalFlip",
    "RandomVerticalFlip",
    "Resize",
    "ToTensor",
    "build_transforms",
    "get_size",
]
