"""ImageList: a batch of differently sized images padded into one tensor, with their true sizes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


class ImageList:
    """Images padded to one size; `image_sizes[i]` is image i's (height, width) before padding."""

    def __init__(self, tensors: torch.Tensor, image_sizes: list[tuple[int, int]]) -> None:
        self.tensors = tensors
        self.image_sizes = image_sizes

    def to(self, *args, **kwargs) -> ImageList:
        return ImageList(self.tensors.to(*args, **kwargs), self.image_sizes)

    def pin_memory(self) -> ImageList:
        return ImageList(self.tensors.pin_memory(), self.image_sizes)

    def __len__(self) -> int:
        return len(self.image_sizes)


def to_image_list(
    tensors: torch.Tensor | ImageList | Sequence[torch.Tensor], size_divisible: int = 0
) -> ImageList:
    """Batch images [C, H, W] (or pass an ImageList through), zero-padding bottom/right so that
    height and width are multiples of `size_divisible` (FPN needs strides to divide evenly)."""
    if isinstance(tensors, ImageList):
        return tensors
    if isinstance(tensors, torch.Tensor) and size_divisible > 0:
        tensors = [tensors] if tensors.dim() == 3 else list(tensors)
    if isinstance(tensors, torch.Tensor):
        if tensors.dim() == 3:
            tensors = tensors[None]
        if tensors.dim() != 4:
            raise ValueError(f"expected images [N, C, H, W] or [C, H, W], got {tensors.shape}")
        image_sizes = [tuple(t.shape[-2:]) for t in tensors]
        return ImageList(tensors, image_sizes)
    if not isinstance(tensors, (list, tuple)) or not tensors:
        raise TypeError(f"to_image_list expects a tensor or a non-empty list, got {type(tensors)}")
    channels = max(int(t.shape[0]) for t in tensors)
    height = max(int(t.shape[1]) for t in tensors)
    width = max(int(t.shape[2]) for t in tensors)
    if size_divisible > 0:
        height = int(math.ceil(height / size_divisible) * size_divisible)
        width = int(math.ceil(width / size_divisible) * size_divisible)
    batched = tensors[0].new_zeros((len(tensors), channels, height, width))
    for img, pad_img in zip(tensors, batched, strict=True):
        pad_img[: img.shape[0], : img.shape[1], : img.shape[2]].copy_(img)
    image_sizes = [tuple(int(s) for s in im.shape[-2:]) for im in tensors]
    return ImageList(batched, image_sizes)
