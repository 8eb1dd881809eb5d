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
from rcnn.data.datasets.paths import image_path, read_utf8_lines
from rcnn.structures.bounding_box import TO_REMOVE


def read_classes(classes_file: str) -> list[str]:
    if not os.path.isfile(classes_file):
        raise DataError(f"classes file {classes_file} not found")
    names = [line.strip() for line in read_utf8_lines(classes_file, "classes file") if line.strip()]
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
    list_file: str, img_dir: str, class_names: list[str], allow_absolute_paths: bool = False
) -> tuple[dict, list[BadItem], dict[int, tuple[int, int] | str]]:
    """The COCO-format dict of a list file (readable images only), its bad items, and each
    line's probed image size (or why the line's image is refused)."""
    if not os.path.isfile(list_file):
        raise DataError(f"list file {list_file} not found")
    lines = [(n, line.split()) for n, line in enumerate(read_utf8_lines(list_file, "list file"), 1)]
    lines = [(n, fields) for n, fields in lines if fields and not fields[0].startswith("#")]
    located = [image_path(img_dir, fields[0], allow_absolute_paths) for _, fields in lines]
    paths = [path for path, _ in located]
    inside = [path for path, refused in located if not refused]
    probed = iter(probe_images(inside))
    sizes = {
        n: refused or next(probed) for (n, _), (_, refused) in zip(lines, located, strict=True)
    }
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
        box_policy: str = "clip",
        allow_absolute_paths: bool = False,
    ) -> None:
        self.list_file = list_file
        dataset, bad, sizes = parse_list(
            list_file, img_dir, read_classes(classes_file), allow_absolute_paths
        )
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
            box_policy=box_policy,
            allow_absolute_paths=allow_absolute_paths,
        )
