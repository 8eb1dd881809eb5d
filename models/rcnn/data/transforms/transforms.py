"""Image + target transforms in maskrcnn-benchmark's style: each takes and returns (image, target).

Random transforms draw from their own `random.Random`; Compose.seed() reseeds them all, so the
data loader can give every sample a seed of its own (same augmentation for the same sample and
step whatever the worker count, the rank split or a resume).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from rcnn.data.transforms import functional as F
from rcnn.structures.bounding_box import FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM, BoxList


class Compose:
    def __init__(self, transforms: Sequence[Any]) -> None:
        self.transforms = list(transforms)

    def seed(self, key: str) -> None:
        """Reseed every random transform from one per-sample key."""
        for position, t in enumerate(self.transforms):
            if hasattr(t, "rng"):
                t.rng.seed(f"{key}/{position}")

    def __call__(self, image: Any, target: BoxList | None = None) -> tuple[Any, BoxList | None]:
        for t in self.transforms:
            image, target = t(image, target)
        return image, target

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


def get_size(image_size: tuple[int, int], min_size: int, max_size: int | None) -> tuple[int, int]:
    """maskrcnn-benchmark's rule: (height, width) with the short side `min_size`, unless that
    puts the long side over `max_size`, then the long side is about `max_size`."""
    w, h = image_size
    size = min_size
    if max_size is not None:
        short, long = float(min(w, h)), float(max(w, h))
        if long / short * size > max_size:
            size = int(round(max_size * short / long))
    if (w <= h and w == size) or (h <= w and h == size):
        return h, w
    if w < h:
        return int(size * h / w), size
    return size, int(size * w / h)


class Resize:
    def __init__(self, min_size: int | Sequence[int], max_size: int | None) -> None:
        self.min_size = tuple(min_size) if isinstance(min_size, (list, tuple)) else (min_size,)
        self.max_size = max_size
        self.rng = random.Random(0)  # multi-scale training picks a short side per sample

    def get_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        return get_size(image_size, self.rng.choice(self.min_size), self.max_size)

    def __call__(self, image: Image.Image, target: BoxList | None = None) -> tuple[Any, Any]:
        size = self.get_size(image.size)
        image = F.resize(image, list(size))
        if target is not None:
            target = target.resize(image.size)
        return image, target

    def __repr__(self) -> str:
        return f"Resize(min_size={self.min_size}, max_size={self.max_size})"


class RandomHorizontalFlip:
    def __init__(self, prob: float = 0.5) -> None:
        self.prob = prob
        self.rng = random.Random(0)

    def __call__(self, image: Image.Image, target: BoxList | None = None) -> tuple[Any, Any]:
        if self.prob > 0 and self.rng.random() < self.prob:
            image = F.hflip(image)
            if target is not None:
                target = target.transpose(FLIP_LEFT_RIGHT)
        return image, target

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(prob={self.prob})"


class RandomVerticalFlip:
    def __init__(self, prob: float = 0.5) -> None:
        self.prob = prob
        self.rng = random.Random(0)

    def __call__(self, image: Image.Image, target: BoxList | None = None) -> tuple[Any, Any]:
        if self.prob > 0 and self.rng.random() < self.prob:
            image = F.vflip(image)
            if target is not None:
                target = target.transpose(FLIP_TOP_BOTTOM)
        return image, target

    def __repr__(self) -> str:
        return f"RandomVerticalFlip(prob={self.prob})"


class ColorJitter:
    """Brightness, contrast, saturation (factors in [1 - x, 1 + x]) and hue (shift in [-x, x]),
    applied in that order to a PIL image; a zero amount is skipped."""

    def __init__(
        self,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        hue: float = 0.0,
    ) -> None:
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {hue}")
        self.amounts = (brightness, contrast, saturation, hue)
        self.rng = random.Random(0)

    def __call__(self, image: Image.Image, target: BoxList | None = None) -> tuple[Any, Any]:
        brightness, contrast, saturation, hue = self.amounts
        if brightness > 0:
            image = F.adjust_brightness(
                image, self.rng.uniform(max(0, 1 - brightness), 1 + brightness)
            )
        if contrast > 0:
            image = F.adjust_contrast(image, self.rng.uniform(max(0, 1 - contrast), 1 + contrast))
        if saturation > 0:
            image = F.adjust_saturation(
                image, self.rng.uniform(max(0, 1 - saturation), 1 + saturation)
            )
        if hue > 0:
            image = F.adjust_hue(image, self.rng.uniform(-hue, hue))
        return image, target

    def __repr__(self) -> str:
        b, c, s, h = self.amounts
        return f"ColorJitter(brightness={b}, contrast={c}, saturation={s}, hue={h})"


class ToTensor:
    def __call__(self, image: Image.Image, target: BoxList | None = None) -> tuple[Any, Any]:
        return F.to_tensor(image), target

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """(x - mean) / std per channel; with `to_bgr255` the RGB [0, 1] input becomes BGR [0, 255]
    first, the input Caffe2/Detectron weights were trained on."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], to_bgr255: bool = True) -> None:
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.to_bgr255 = to_bgr255

    def __call__(self, image: torch.Tensor, target: BoxList | None = None) -> tuple[Any, Any]:
        if self.to_bgr255:
            image = image[[2, 1, 0]] * 255
        return F.normalize(image, mean=self.mean, std=self.std), target

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std}, to_bgr255={self.to_bgr255})"
