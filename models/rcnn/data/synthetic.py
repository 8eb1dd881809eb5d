"""A synthetic COCO-format detection set: real JPEGs and real instances jsons, made locally.

Layout written under `root`:
    train/train_000001.jpg ...        val/val_000001.jpg ...
    annotations/instances_train.json  annotations/instances_val.json

Each image has a gradient background with pixel noise and clutter (thin lines, small blobs that
are not objects) and 1..max_objects filled shapes of random colour (colour carries no class
information), 8%..40% of the short side, allowed to overlap partially. Segmentations are the
shapes' own polygons (the exact vertices drawn), so boxes, areas and masks agree with the pixels.
Every image is drawn from its own seed (set seed, split, index), so the same seed gives the same
bytes whatever the number of images.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from rcnn.config.paths_catalog import DatasetCatalog

SHAPE_NAMES = ("circle", "square", "triangle", "pentagon", "star", "cross")
SPLITS = ("train", "val")
JPEG_QUALITY = 90
MIN_SIZE_FRAC, MAX_SIZE_FRAC = 0.08, 0.40
# A later shape may cover at most this share of an earlier one's box: every object stays visible.
MAX_COVER = 0.35


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate: image counts per split, image size, seed and number of classes."""

    train_images: int
    val_images: int
    width: int = 320
    height: int = 320
    seed: int = 0
    num_classes: int = 3
    max_objects: int = 6

    def __post_init__(self) -> None:
        if not 1 <= self.num_classes <= len(SHAPE_NAMES):
            raise ValueError(
                f"num_classes must be in 1..{len(SHAPE_NAMES)}, got {self.num_classes}"
            )
        if min(self.width, self.height) < 32:
            raise ValueError(f"image size must be at least 32x32, got {self.width}x{self.height}")
        if self.train_images < 0 or self.val_images < 0:
            raise ValueError("image counts must be >= 0")
        if self.max_objects < 1:
            raise ValueError(f"max_objects must be >= 1, got {self.max_objects}")


def ann_file(root: str | Path, split: str) -> Path:
    """The instances json of `split` under a synthetic root."""
    return Path(root) / "annotations" / f"instances_{split}.json"


def img_dir(root: str | Path, split: str) -> Path:
    """The image folder of `split` under a synthetic root."""
    return Path(root) / split


def _shape_polygon(name: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Vertices (N, 2) of shape `name` with circumradius r around (cx, cy), rotated by angle."""
    if name == "circle":
        t = np.linspace(0.0, 2 * math.pi, 32, endpoint=False)
        radii = np.full_like(t, r)
    elif name == "square":
        t = np.arange(4) * (math.pi / 2) + math.pi / 4
        radii = np.full_like(t, r)
    elif name == "triangle":
        t = np.arange(3) * (2 * math.pi / 3) - math.pi / 2
        radii = np.full_like(t, r)
    elif name == "pentagon":
        t = np.arange(5) * (2 * math.pi / 5) - math.pi / 2
        radii = np.full_like(t, r)
    elif name == "star":
        t = np.arange(10) * (math.pi / 5) - math.pi / 2
        radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
    else:  # cross: 12-gon made of two bars of width r/2
        a, b = r * 0.316, r * 0.949  # half-width and half-length, so corners lie on radius r
        pts = np.array(
            [
                (-a, -b),
                (a, -b),
                (a, -a),
                (b, -a),
                (b, a),
                (a, a),
                (a, b),
                (-a, b),
                (-a, a),
                (-b, a),
                (-b, -a),
                (-a, -a),
            ]
        )
        c, s = math.cos(angle), math.sin(angle)
        rot = pts @ np.array([[c, s], [-s, c]])
        return np.round(rot + (cx, cy), 2)
    if name != "circle":
        t = t + angle
    pts = np.stack([cx + radii * np.cos(t), cy + radii * np.sin(t)], axis=1)
    return np.round(pts, 2)


def _polygon_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Linear two-colour gradient in a random direction, as float32 (h, w, 3)."""
    c0, c1 = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    xs = np.arange(w, dtype=np.float32) * math.cos(theta)
    ys = np.arange(h, dtype=np.float32) * math.sin(theta)
    proj = ys[:, None] + xs[None, :]
    t = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
    return c0 + t[..., None] * (c1 - c0)


def _draw_clutter(rng: np.random.Generator, draw: ImageDraw.ImageDraw, w: int, h: int) -> None:
    """Thin lines and small blobs: edges and colour that are not objects."""
    for _ in range(int(rng.integers(2, 7))):
        x0, x1 = rng.uniform(0, w, size=2)
        y0, y1 = rng.uniform(0, h, size=2)
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=int(rng.integers(1, 3)))
    blob_max = max(2.0, 0.025 * min(w, h))  # well under the smallest object (8% of short side)
    for _ in range(int(rng.integers(3, 10))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(1.0, blob_max, size=2)
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=colour)


def _covered_share(box: np.ndarray, other: np.ndarray) -> float:
    """Share of `other`'s area covered by `box` (both x0, y0, x1, y1)."""
    iw = min(box[2], other[2]) - max(box[0], other[0])
    ih = min(box[3], other[3]) - max(box[1], other[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return float(iw * ih / ((other[2] - other[0]) * (other[3] - other[1])))


def _contrasting_colour(rng: np.random.Generator, near: np.ndarray) -> tuple[int, int, int]:
    """A random colour at least some distance from the background under the object."""
    colour = rng.integers(0, 256, size=3)
    for _ in range(8):
        if np.abs(colour - near).sum() > 120:
            break
        colour = rng.integers(0, 256, size=3)
    return tuple(int(v) for v in colour)


def render_image(spec: SyntheticSpec, rng: np.random.Generator) -> tuple[bytes, list[dict]]:
    """One JPEG (bytes) and its objects: [{category_id, polygon (N, 2)}]."""
    w, h = spec.width, spec.height
    short = min(w, h)
    bg = _background(rng, w, h)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    _draw_clutter(rng, draw, w, h)

    objects: list[dict] = []
    boxes: list[np.ndarray] = []
    for _ in range(int(rng.integers(1, spec.max_objects + 1))):
        label = int(rng.integers(0, spec.num_classes))
        for _attempt in range(10):
            side = rng.uniform(MIN_SIZE_FRAC, MAX_SIZE_FRAC) * short
            r = side / 2
            cx, cy = rng.uniform(r + 1, w - r - 1), rng.uniform(r + 1, h - r - 1)
            poly = _shape_polygon(SHAPE_NAMES[label], cx, cy, r, rng.uniform(0, 2 * math.pi))
            box = np.array([*poly.min(axis=0), *poly.max(axis=0)])
            if all(_covered_share(box, b) <= MAX_COVER for b in boxes):
                break
        else:
            continue
        near = bg[int(cy), int(cx)]
        draw.polygon([tuple(p) for p in poly.tolist()], fill=_contrasting_colour(rng, near))
        boxes.append(box)
        objects.append({"category_id": label + 1, "polygon": poly})

    # Luminance noise (one channel, broadcast): a third of the draws, same look for the detector.
    noise = rng.standard_normal(size=(h, w, 1), dtype=np.float32) * rng.uniform(2.0, 10.0)
    pixels = np.asarray(img, dtype=np.float32) + noise
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
        out, format="JPEG", quality=JPEG_QUALITY, subsampling=0
    )
    return out.getvalue(), objects


def generate_split(spec: SyntheticSpec, root: str | Path, split: str) -> dict:
    """Write the images and the instances json of one split; returns the json dict."""
    count = spec.train_images if split == "train" else spec.val_images
    folder = img_dir(root, split)
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for idx in range(count):
        rng = np.random.default_rng([spec.seed, SPLITS.index(split), idx])
        jpeg, objects = render_image(spec, rng)
        file_name = f"{split}_{idx + 1:06d}.jpg"
        (folder / file_name).write_bytes(jpeg)
        image_id = idx + 1
        images.append(
            {"id": image_id, "file_name": file_name, "width": spec.width, "height": spec.height}
        )
        for obj in objects:
            poly = obj["polygon"]
            x0, y0 = poly.min(axis=0)
            x1, y1 = poly.max(axis=0)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": obj["category_id"],
                    "bbox": [
                        round(float(x0), 2),
                        round(float(y0), 2),
                        round(float(x1 - x0), 2),
                        round(float(y1 - y0), 2),
                    ],
                    "area": round(_polygon_area(poly), 2),
                    "iscrowd": 0,
                    "segmentation": [[round(float(v), 2) for v in poly.reshape(-1)]],
                }
            )
    categories = [
        {"id": i + 1, "name": SHAPE_NAMES[i], "supercategory": "shape"}
        for i in range(spec.num_classes)
    ]
    dataset = {
        "info": {"description": f"rcnn-bench synthetic shapes, seed {spec.seed}", "version": "1"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    path = ann_file(root, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataset, separators=(",", ":")))
    return dataset


def generate(spec: SyntheticSpec, root: str | Path) -> dict[str, Path]:
    """Write both splits under `root`; returns {split: ann_file} for the splits with images."""
    written = {}
    for split in SPLITS:
        count = spec.train_images if split == "train" else spec.val_images
        if count:
            generate_split(spec, root, split)
            written[split] = ann_file(root, split)
    return written


def register_synthetic(root: str | Path, name: str | None = None) -> tuple[str, str]:
    """Register a generated set's splits in the paths catalog as ("synthetic_<name>_train",
    "synthetic_<name>_val"); `name` defaults to the root folder's name."""
    root = Path(root).resolve()
    name = name or root.name
    names = []
    for split in SPLITS:
        names.append(f"synthetic_{name}_{split}")
        DatasetCatalog.register(names[-1], str(img_dir(root, split)), str(ann_file(root, split)))
    return names[0], names[1]
