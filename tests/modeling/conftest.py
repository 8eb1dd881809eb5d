"""Shared fixtures: small real JPEG files with coloured rectangles as objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from rcnn.structures.bounding_box import BoxList

# maskrcnn-benchmark's default PIXEL_MEAN (BGR).
PIXEL_MEAN_BGR = (102.9801, 115.9465, 122.7717)
COLORS = {1: (220, 40, 40), 2: (40, 200, 60), 3: (40, 60, 220)}


def write_jpeg(path: Path, size: tuple[int, int], objects: list[tuple[int, tuple]]) -> None:
    """An RGB JPEG of (width, height) with filled rectangles (label, (x1, y1, x2, y2))."""
    image = Image.new("RGB", size, (128, 128, 120))
    draw = ImageDraw.Draw(image)
    for label, box in objects:
        draw.rectangle(box, fill=COLORS[label])
    image.save(path, quality=95)


def load_bgr_minus_mean(path: Path) -> torch.Tensor:
    """[3, H, W] float: BGR 0-255 minus PIXEL_MEAN, the model's input convention."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    bgr = torch.from_numpy(rgb[:, :, ::-1].copy()).permute(2, 0, 1)
    return bgr - torch.tensor(PIXEL_MEAN_BGR)[:, None, None]


@pytest.fixture(scope="session")
def jpeg_tensor(tmp_path_factory):
    """fn(size, objects) -> the image written as a JPEG, read back as the model's input."""
    folder = tmp_path_factory.mktemp("jpegs")

    def make(size: tuple[int, int], objects: list[tuple[int, tuple]]) -> torch.Tensor:
        path = folder / f"scene{len(list(folder.iterdir()))}.jpg"
        write_jpeg(path, size, objects)
        return load_bgr_minus_mean(path)

    return make


@pytest.fixture
def rectangle_images(tmp_path: Path) -> list[tuple[torch.Tensor, BoxList]]:
    """Two 160x128 JPEGs written to disk and read back, with their ground-truth BoxLists."""
    scenes = [
        [(1, (10, 20, 60, 90)), (2, (80, 30, 150, 100))],
        [(3, (30, 10, 100, 60)), (1, (100, 70, 150, 120))],
    ]
    samples = []
    for i, objects in enumerate(scenes):
        path = tmp_path / f"img{i}.jpg"
        write_jpeg(path, (160, 128), objects)
        target = BoxList(torch.tensor([b for _, b in objects], dtype=torch.float32), (160, 128))
        target.add_field("labels", torch.tensor([label for label, _ in objects]))
        samples.append((load_bgr_minus_mean(path), target))
    return samples
