"""COCODataset: images in a folder and a COCO instances json (train2017/val2017 layout)."""

from __future__ import annotations

import json
import math
import os

from pycocotools.coco import COCO

from rcnn.data.datasets.bad_data import DataError
from rcnn.data.datasets.base import DetectionDataset, Transforms, coco_from_dict


def load_coco(ann_file: str) -> COCO:
    """pycocotools COCO over `ann_file`; a missing or malformed file is a DataError naming it
    (and the image or annotation at fault)."""
    if not os.path.isfile(ann_file):
        raise DataError(f"annotation file {ann_file} not found; check DATASET_DIR and the name")
    try:
        with open(ann_file, encoding="utf-8") as f:
            dataset = json.load(f)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError
        raise DataError(f"annotation file {ann_file} is not COCO json: {err}") from None
    problem = coco_schema_problem(dataset)
    if problem:
        raise DataError(f"annotation file {ann_file}: {problem}")
    return coco_from_dict(dataset)


def _count(value: object) -> bool:
    """A positive whole number (json may write 640.0)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value == int(value)
        and value > 0
    )


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unique_ids(items: list, kind: str) -> tuple[set[int], str]:
    """The ids of `items` (json objects), or why they are not unique integers."""
    ids: set[int] = set()
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not _is_id(item.get("id")):
            return ids, f"{kind} #{n} has no integer 'id'"
        if item["id"] in ids:
            return ids, f"{kind} id {item['id']} appears twice"
        ids.add(item["id"])
    return ids, ""


def coco_schema_problem(dataset: object) -> str:
    """What makes `dataset` unusable as COCO instances, naming the image or annotation; "" if
    nothing. Per-annotation content (boxes, masks) is judged later under DATASETS.ON_BAD_DATA."""
    if not isinstance(dataset, dict):
        return f"expected a json object, got {type(dataset).__name__}"
    for key in ("images", "categories"):
        if not isinstance(dataset.get(key), list):
            return f"'{key}' is missing or not a list"
    if not isinstance(dataset.setdefault("annotations", []), list):
        return "'annotations' is not a list"
    _, problem = _unique_ids(dataset["categories"], "category")
    if problem:
        return problem
    for cat in dataset["categories"]:
        if not isinstance(cat.get("name"), str):
            return f"category {cat['id']} has no 'name'"
    image_ids, problem = _unique_ids(dataset["images"], "image")
    if problem:
        return problem
    for img in dataset["images"]:
        for key in ("width", "height"):
            if not _count(img.get(key)):
                got = img.get(key)
                return f"image {img['id']}: '{key}' must be a positive whole number, got {got!r}"
        if not isinstance(img.get("file_name"), str) or not img["file_name"]:
            return f"image {img['id']}: 'file_name' is missing or not a string"
    _, problem = _unique_ids(dataset["annotations"], "annotation")
    if problem:
        return problem
    for ann in dataset["annotations"]:
        if ann.get("image_id") not in image_ids:
            return f"annotation {ann['id']}: image_id {ann.get('image_id')!r} is not an image"
        if not _is_id(ann.get("category_id")):
            return f"annotation {ann['id']}: 'category_id' is missing or not an integer"
    return ""


class COCODataset(DetectionDataset):
    """maskrcnn-benchmark's COCODataset: (PIL image, BoxList with labels [and masks], idx).

    `root` is the image folder; crowd annotations are not targets; for training
    (`remove_images_without_annotations`) images without a usable annotation are dropped.
    """

    def __init__(
        self,
        ann_file: str,
        root: str,
        remove_images_without_annotations: bool,
        transforms: Transforms | None = None,
        on_bad_data: str = "reject",
        with_masks: bool = True,
        box_policy: str = "clip",
        allow_absolute_paths: bool = False,
    ) -> None:
        self.ann_file = ann_file
        super().__init__(
            load_coco(ann_file),
            root,
            source=f"{ann_file} (images in {root})",
            remove_images_without_annotations=remove_images_without_annotations,
            transforms=transforms,
            on_bad_data=on_bad_data,
            with_masks=with_masks,
            box_policy=box_policy,
            allow_absolute_paths=allow_absolute_paths,
        )
