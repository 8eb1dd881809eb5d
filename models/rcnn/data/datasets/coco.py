"""COCODataset: images in a folder and a COCO instances json (train2017/val2017 layout)."""

from __future__ import annotations

import contextlib
import io
import os

from pycocotools.coco import COCO

from rcnn.data.datasets.bad_data import DataError
from rcnn.data.datasets.base import DetectionDataset, Transforms


def load_coco(ann_file: str) -> COCO:
    """pycocotools COCO over `ann_file`; a missing or malformed file is a DataError naming it."""
    if not os.path.isfile(ann_file):
        raise DataError(f"annotation file {ann_file} not found; check DATASET_DIR and the name")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(ann_file)
    except (ValueError, AssertionError, KeyError, TypeError) as err:
        raise DataError(f"annotation file {ann_file} is not COCO json: {err}") from None


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
        )
