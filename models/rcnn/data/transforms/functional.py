"""Image operations on PIL images and tensors, in PIL and torch alone (torchvision is optional).

Each gives the pixels torchvision.transforms.functional gives for a PIL image: the same PIL
resampling and ImageEnhance calls, the same uint8 hue rotation, the same float conversion.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageEnhance


def resize(image: Image.Image, size: Sequence[int]) -> Image.Image:
    """Bilinear resize to (height, width)."""
    height, width = size
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.BILINEAR)


def hflip(image: Image.Image) -> Image.Image:
    return image.transpose(Image.FLIP_LEFT_RIGHT)


def vflip(image: Image.Image) -> Image.Image:
    return image.transpose(Image.FLIP_TOP_BOTTOM)


def adjust_brightness(image: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(factor)


def adjust_contrast(image: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(factor)


def adjust_saturation(image: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Color(image).enhance(factor)


def adjust_hue(image: Image.Image, shift: float) -> Image.Image:
    """Rotate the hue by `shift` turns (in [-0.5, 0.5]) in PIL's 8-bit HSV space."""
    if image.mode in {"L", "1", "I", "F"}:
        return image  # no hue to rotate
    hue, saturation, value = image.convert("HSV").split()
    rotated = np.array(hue, dtype=np.uint8)
    # uint8 addition wraps around the hue circle; a negative shift wraps like a C cast does
    rotated += np.uint8(int(shift * 255) % 256)
    hsv = Image.merge("HSV", (Image.fromarray(rotated, "L"), saturation, value))
    return hsv.convert(image.mode)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """A float [C, H, W] tensor; 8-bit images are scaled to [0, 1]."""
    pixels = np.array(image, copy=True)
    if image.mode == "1":
        pixels = pixels.astype(np.uint8) * 255
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
    if tensor.dtype == torch.uint8:
        return tensor.to(torch.get_default_dtype()).div(255)
    return tensor


def normalize(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(image - mean) / std per channel, on a new tensor."""
    mean_t = torch.as_tensor(mean, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    return (image - mean_t) / std_t
