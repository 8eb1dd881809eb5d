"""TxtListDataset: a plain-text list, one image a line, turned into COCO format in memory.

    relative/path.jpg x1,y1,x2,y2,class x1,y1,x2,y2,class ...

Boxes are pixel corners (x2, y2 inclusive, the legacy convention); `class` is a 0-based index
into the classes file (one name a line), so its label is index + 1. Image ids are line numbers.
"""

from __future__ import annotations

import math
import os

from rcnn.data.datasets.bad_data import BadItem, DataError
from rcnn.data.datasets.base import DetectionDataset, Transforms, coco_from_dict
from rcnn.data.datasets.image_io import probe_images
from rcnn.structures.bounding_box import TO_REMOVE


def read_classes(classes_file: str) -> list[str]:
    if not os.path.isfile(classes_file):
        raise DataError(f"classes file {classes_file} not found")
    with open(classes_file, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise DataError(f"classes file {classes_file} has no class names")
    return names


def _parse_box(text: str, num_classes: int) -> tuple[list[float], int] | str:
    """((x1, y1, x2, y2), class index) from "x1,y1,x2,y2,class", or why it is bad."""
    parts = text.split(",")
    if len(parts) != 5:
        return f"box {text!r} is not x1,y1,x2,y2,class"
    try:
        coords = [float(v) for v in parts[:4]]
        cls = int(parts[4])
    except ValueError:
        return f"box {text!r} has a non-numeric value"
    if not all(math.isfinite(v) for v in coords):
        return f"box {text!r} has a non-finite coordinate"
    if coords[2] <= coords[0] or coords[3] <= coords[1]:
        return f"box with non-positive size {text!r}"
    if not 0 <= cls < num_classes:
        return f"unknown category: class index {cls} in {text!r} (classes file has {num_classes})"
    return coords, cls


def parse_list(
    list_file: str, img_dir: str, class_names: list[str]
) -> tuple[dict, list[BadItem], dict[int, tuple[int, int] | str]]:
    """The COCO-format dict of a list file (readable images only), its bad items, and each
    line's probed image size."""
    if not os.path.isfile(list_file):
        raise DataError(f"list file {list_file} not found")
    with open(list_file, encoding="utf-8") as f:
        lines = [(n, line.split()) for n, line in enumerate(f, start=1)]
    lines = [(n, fields) for n, fields in lines if fields and not fields[0].startswith("#")]
    paths = [os.path.join(img_dir, fields[0]) for _, fields in lines]
    sizes = dict(zip((n for n, _ in lines), probe_images(paths), strict=True))
    images, annotations, bad = [], [], []
    for (line_no, fields), path in zip(lines, paths, strict=True):
        size = sizes[line_no]
        if isinstance(size, str):
            bad.append(BadItem(line_no, path, size))
            continue
        images.append({"id": line_no, "file_name": fields[0], "width": size[0], "height": size[1]})
        for text in fields[1:]:
            parsed = _parse_box(text, len(class_names))
            if isinstance(parsed, str):
                bad.append(BadItem(line_no, path, parsed))
                continue
            (x1, y1, x2, y2), cls = parsed
            w, h = x2 - x1 + TO_REMOVE, y2 - y1 + TO_REMOVE
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": line_no,
                    "category_id": cls + 1,
                    "bbox": [x1, y1, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
    dataset = {"images": images, "annotations": annotations, "categories": categories}
    return dataset, bad, sizes


class TxtListDataset(DetectionDataset):
    """Boxes-only dataset from a text list; `coco` holds the same ground truth for evaluation."""

    def __init__(
        self,
        list_file: str,
        img_dir: str,
        classes_file: str,
        remove_images_without_annotations: bool,
        transforms: Transforms | None = None,
        on_bad_data: str = "reject",
    ) -> None:
        self.list_file = list_file
        dataset, bad, sizes = parse_list(list_file, img_dir, read_classes(classes_file))
        super().__init__(
            coco_from_dict(dataset),
            img_dir,
            source=f"{list_file} (images in {img_dir})",
            remove_images_without_annotations=remove_images_without_annotations,
            transforms=transforms,
            on_bad_data=on_bad_data,
            with_masks=False,
            known_bad=bad,
            image_sizes=sizes,
        )
