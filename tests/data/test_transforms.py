"""Transforms: maskrcnn-benchmark's sizes, legacy flips, BGR-255 normalisation, seeded draws."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from rcnn.config import get_default_config
from rcnn.data.transforms import (
    ColorJitter,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    Resize,
    ToTensor,
    build_transforms,
    get_size,
)
from rcnn.structures.bounding_box import BoxList


@pytest.mark.parametrize(
    ("size", "min_size", "max_size", "expected"),
    [
        ((640, 480), 800, 1333, (800, 1066)),  # (w, h) -> (h, w)
        ((480, 640), 800, 1333, (1066, 800)),
        ((1000, 500), 800, 1333, (666, 1332)),  # long side capped by max_size
        ((800, 600), 600, 1000, (600, 800)),  # already at size: unchanged
        ((333, 500), 800, None, (1201, 800)),
    ],
)
def test_get_size_rule(size, min_size, max_size, expected) -> None:
    assert get_size(size, min_size, max_size) == expected


def test_resize_image_and_boxes() -> None:
    image = Image.new("RGB", (640, 480))
    boxes = BoxList(
        torch.tensor([[0.0, 0.0, 639.0, 479.0], [100.0, 50.0, 200.0, 150.0]]), (640, 480)
    )
    out, target = Resize((800,), 1333)(image, boxes)
    assert out.size == (1066, 800) and target.size == (1066, 800)
    torch.testing.assert_close(
        target.bbox[1],
        torch.tensor([100 * 1066 / 640, 50 * 800 / 480, 200 * 1066 / 640, 150 * 800 / 480]),
    )


def test_flip_uses_legacy_convention() -> None:
    image = Image.new("RGB", (100, 50))
    image.putpixel((0, 0), (255, 0, 0))
    boxes = BoxList(torch.tensor([[10.0, 5.0, 29.0, 20.0]]), (100, 50))
    out, target = RandomHorizontalFlip(1.0)(image, boxes)
    assert out.getpixel((99, 0)) == (255, 0, 0)
    assert target.bbox.tolist() == [[70.0, 5.0, 89.0, 20.0]]
    same, kept = RandomHorizontalFlip(0.0)(image, boxes)
    assert same is image and kept is boxes


def test_to_tensor_and_normalize_bgr255() -> None:
    image = Image.new("RGB", (4, 2), (255, 128, 0))
    tensor, _ = ToTensor()(image)
    out, _ = Normalize([102.9801, 115.9465, 122.7717], [1.0, 1.0, 1.0], to_bgr255=True)(tensor)
    assert out.shape == (3, 2, 4)
    torch.testing.assert_close(
        out[:, 0, 0], torch.tensor([0 - 102.9801, 128 - 115.9465, 255 - 122.7717])
    )
    rgb, _ = Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5], to_bgr255=False)(tensor)
    torch.testing.assert_close(rgb[:, 0, 0], torch.tensor([1.0, 128 / 255 * 2 - 1, -1.0]))


def test_seeded_draws_repeat_per_key() -> None:
    image = Image.new("RGB", (64, 48), (90, 120, 150))
    chain = Compose(
        [
            ColorJitter(0.4, 0.4, 0.4, 0.1),
            Resize((32, 40, 48, 56), 200),
            RandomHorizontalFlip(0.5),
            ToTensor(),
        ]
    )

    def run(key: str) -> torch.Tensor:
        chain.seed(key)
        return chain(image)[0]

    first = run("0:3:7")
    assert torch.equal(run("0:3:7"), first)
    outs = {tuple(run(f"0:{i}:7").shape) for i in range(20)}
    assert len(outs) > 1  # the multi-scale choice varies across keys


def test_build_transforms_from_config() -> None:
    cfg = get_default_config()
    cfg.merge_from_list(
        ["INPUT.MIN_SIZE_TRAIN", (600, 700), "INPUT.MAX_SIZE_TRAIN", 1000, "INPUT.BRIGHTNESS", 0.2]
    )
    train = build_transforms(cfg, is_train=True)
    names = [type(t).__name__ for t in train.transforms]
    assert names == ["ColorJitter", "Resize", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    assert train.transforms[1].min_size == (600, 700) and train.transforms[1].max_size == 1000
    test = build_transforms(cfg, is_train=False)
    assert [type(t).__name__ for t in test.transforms] == ["Resize", "ToTensor", "Normalize"]
    image, _ = test(Image.new("RGB", (640, 480)))
    assert image.shape == (3, 800, 1066)
