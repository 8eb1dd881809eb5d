"""BatchCollator: (image, target, idx) samples -> (ImageList, targets, ids)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rcnn.data.buckets import Canvas, canvas_for, on_canvas
from rcnn.structures.image_list import ImageList, to_image_list


class BatchCollator:
    """Pads the batch's images into one tensor whose height and width are multiples of
    `size_divisible` (FPN strides), then onto the smallest of `buckets` that holds it (static
    shapes for a compiled backbone); targets and ids stay per image."""

    def __init__(self, size_divisible: int = 0, buckets: Sequence[Canvas] = ()) -> None:
        self.size_divisible = size_divisible
        self.buckets = list(buckets)

    def __call__(self, batch: Sequence[tuple[Any, Any, int]]) -> tuple[ImageList, tuple, tuple]:
        images, targets, ids = zip(*batch, strict=True)
        padded = to_image_list(list(images), self.size_divisible)
        canvas = canvas_for(*padded.tensors.shape[-2:], self.buckets)
        # a batch larger than every bucket keeps its own size: the window's recompile check
        # then fails the cell naming that shape
        return (padded if canvas is None else on_canvas(padded, canvas)), targets, ids
