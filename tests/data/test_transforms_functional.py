"""The image operations without torchvision: pixel for pixel what torchvision's PIL path gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rcnn.data.transforms import functional as F

TF = pytest.importorskip("torchvision.transforms.functional")


@pytest.fixture
def image() -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("size", [(50, 70), (20, 31), (37, 53)])
def test_resize(image, size):
    out = F.resize(image, size)
    assert out.size == (size[1], size[0])
    assert same_pixels(out, TF.resize(image, list(size)))


def test_flips(image):
    assert same_pixels(F.hflip(image), TF.hflip(image))
    assert same_pixels(F.vflip(image), TF.vflip(image))


@pytest.mark.parametrize("factor", [0.4, 1.0, 1.7])
def test_brightness_contrast_saturation(image, factor):
    for name in ("adjust_brightness", "adjust_contrast", "adjust_saturation"):
        assert same_pixels(getattr(F, name)(image, factor), getattr(TF, name)(image, factor)), name


@pytest.mark.parametrize("shift", [-0.5, -0.3, -0.01, 0.0, 0.05, 0.27, 0.5])
def test_hue_wraps_like_torchvision(image, shift):
    out = F.adjust_hue(image, shift)
    assert same_pixels(out, TF.adjust_hue(image, shift))
    assert same_pixels(F.adjust_hue(image.convert("L"), shift), image.convert("L"))


@pytest.mark.parametrize("mode", ["RGB", "L", "1"])
def test_to_tensor(image, mode):
    converted = image.convert(mode)
    got = F.to_tensor(converted)
    assert got.dtype == torch.float32 and got.shape == (len(mode.replace("1", "L")), 37, 53)
    assert torch.equal(got, TF.to_tensor(converted))
    assert got.min() >= 0.0 and got.max() <= 1.0


def test_normalize_returns_a_new_tensor(image):
    tensor = F.to_tensor(image) * 255
    before = tensor.clone()
    mean, std = [102.9801, 115.9465, 122.7717], [1.0, 2.0, 0.5]
    got = F.normalize(tensor, mean, std)
    assert torch.equal(tensor, before)
    assert torch.equal(got, TF.normalize(tensor, mean, std))
    torch.testing.assert_close(
        got[:, 3, 4], (before[:, 3, 4] - torch.tensor(mean)) / torch.tensor(std)
    )
