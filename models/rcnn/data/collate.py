"""BatchCollator: (image, target, idx) samples -> (ImageList, targets, ids)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rcnn.structures.image_list import ImageList, to_image_list


class BatchCollator:
    """Pads the batch's images into one tensor whose height and width are multiples of
    `size_divisible` (FPN strides); targets and ids stay per image."""

    def __init__(self, size_divisible: int = 0) -> None:
        self.size_divisible = size_divisible

    def __call__(self, batch: Sequence[tuple[Any, Any, int]]) -> tuple[ImageList, tuple, tuple]:
        images, targets, ids = zip(*batch, strict=True)
        return to_image_list(list(images), self.size_divisible), targets, ids
