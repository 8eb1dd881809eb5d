"""A detection dataset over COCO-format ground truth held in a pycocotools COCO object.

COCODataset (a json on disk) and TxtListDataset (a text list turned into the same format in
memory) share it, so both give the evaluator `coco`, `id_to_img_map` and the category maps.
All checks run at construction; bad items are rejected or skipped as `on_bad_data` says.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from pycocotools.coco import COCO

from rcnn.data.datasets.bad_data import MAX_LISTED, BadItem, DataError, settle_bad_items
from rcnn.data.datasets.image_io import load_rgb, probe_images
from rcnn.structures.bounding_box import BoxList
from rcnn.structures.segmentation_mask import MaskError, SegmentationMask, check_segmentation

logger = logging.getLogger(__name__)

Transforms = Callable[[Image.Image, BoxList], tuple[Any, BoxList]]


def coco_from_dict(dataset: dict) -> COCO:
    """A pycocotools COCO object over an in-memory COCO-format dict (no console chatter)."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def has_valid_annotation(anno: Sequence[dict]) -> bool:
    """maskrcnn-benchmark's training filter: some annotation, not all boxes 1 pixel or less."""
    if not anno:
        return False
    return not all(any(o <= 1 for o in obj["bbox"][2:]) for obj in anno)


def _annotation_problem(ann: dict, size: tuple[int, int], cats: dict, with_masks: bool) -> str:
    """Why an annotation cannot be trained on, or "" when it is fine."""
    bbox = ann.get("bbox")
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return f"malformed bbox {bbox!r}"
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox):
        return f"non-finite bbox {bbox}"
    if bbox[2] <= 0 or bbox[3] <= 0:
        return f"box with non-positive size (x, y, w, h) {bbox}"
    if ann.get("category_id") not in cats:
        return f"unknown category {ann.get('category_id')!r}"
    if with_masks:
        if "segmentation" not in ann:
            return "no segmentation (masks are on)"
        try:
            check_segmentation(ann["segmentation"], size)
        except MaskError as err:
            return f"bad segmentation: {err}"
    return ""


class DetectionDataset(torch.utils.data.Dataset):
    """Images of `img_dir` with the boxes (and masks) of `coco`; items are (image, target, idx)."""

    def __init__(
        self,
        coco: COCO,
        img_dir: str,
        source: str,
        remove_images_without_annotations: bool,
        transforms: Transforms | None = None,
        on_bad_data: str = "reject",
        with_masks: bool = True,
        known_bad: Sequence[BadItem] = (),
        image_sizes: dict[int, tuple[int, int] | str] | None = None,
    ) -> None:
        self.coco = coco
        self.root = img_dir
        self.source = source
        self.transforms = transforms
        self.with_masks = with_masks
        self.categories = {cat["id"]: cat["name"] for cat in coco.cats.values()}
        # Contiguous labels 1..K in the json's category order, as maskrcnn-benchmark numbers them.
        self.json_category_id_to_contiguous_id = {c: i + 1 for i, c in enumerate(coco.getCatIds())}
        self.contiguous_category_id_to_json_id = {
            v: k for k, v in self.json_category_id_to_contiguous_id.items()
        }
        bad = list(known_bad)
        self.ids, self._annos, self.removed_empty = self._check(
            sorted(coco.imgs), remove_images_without_annotations, bad, image_sizes
        )
        settle_bad_items(bad, on_bad_data, source)
        self.bad_items = bad
        self.id_to_img_map = dict(enumerate(self.ids))

    def _check(
        self,
        ids: list[int],
        remove_empty: bool,
        bad: list[BadItem],
        image_sizes: dict[int, tuple[int, int] | str] | None,
    ) -> tuple[list[int], dict[int, list[dict]], list[BadItem]]:
        """Probe every image and annotation once; returns kept ids, their annotations, and the
        images removed for having no usable annotation (training only)."""
        paths = [self.path_of(i) for i in ids]
        if image_sizes is None:
            image_sizes = dict(zip(ids, probe_images(paths), strict=True))
        kept, annos, empty = [], {}, []
        for img_id, path in zip(ids, paths, strict=True):
            info = self.coco.imgs[img_id]
            probed = image_sizes[img_id]
            if isinstance(probed, str):
                bad.append(BadItem(img_id, path, probed))
                continue
            size = (int(info["width"]), int(info["height"]))
            if tuple(probed) != size:
                bad.append(
                    BadItem(
                        img_id,
                        path,
                        f"file is {probed[0]}x{probed[1]}, the annotations say {size[0]}x{size[1]}",
                    )
                )
                continue
            anno = self.coco.imgToAnns.get(img_id, [])
            good, valid = [], []  # valid: crowd too, which maskrcnn-benchmark's filter counts
            for ann in anno:
                if ann.get("iscrowd", 0):
                    valid.append(ann)  # crowd regions are not targets, as in maskrcnn-benchmark
                    continue
                problem = _annotation_problem(ann, size, self.coco.cats, self.with_masks)
                if problem:
                    bad.append(BadItem(img_id, path, f"annotation {ann.get('id')}: {problem}"))
                else:
                    good.append(ann)
                    valid.append(ann)
            if remove_empty and not has_valid_annotation(valid):
                empty.append(BadItem(img_id, path, "no usable annotation"))
                continue
            kept.append(img_id)
            annos[img_id] = good
        if empty:
            listed = ", ".join(str(item.image_id) for item in empty[:MAX_LISTED])
            logger.info(
                "%s: removed %d image(s) without usable annotations for training (%s%s)",
                self.source,
                len(empty),
                listed,
                ", ..." if len(empty) > MAX_LISTED else "",
            )
        return kept, annos, empty

    def path_of(self, image_id: int) -> str:
        return os.path.join(self.root, self.coco.imgs[image_id]["file_name"])

    @property
    def num_bad(self) -> int:
        return len(self.bad_items)

    def __len__(self) -> int:
        return len(self.ids)

    def get_img_info(self, index: int) -> dict:
        """The image's record, with at least "height" and "width"."""
        return self.coco.imgs[self.ids[index]]

    def __getitem__(self, index: int | tuple[int, str]) -> tuple[Any, BoxList, int]:
        """`index`, or (index, seed key) from the training sampler: reseed the augmentation."""
        if isinstance(index, tuple):
            index, key = index
            if self.transforms is not None and hasattr(self.transforms, "seed"):
                self.transforms.seed(key)
        img_id = self.ids[index]
        path = self.path_of(img_id)
        img = load_rgb(path, img_id)
        anno = self._annos[img_id]
        boxes = torch.as_tensor([obj["bbox"] for obj in anno], dtype=torch.float32).reshape(-1, 4)
        target = BoxList(boxes, img.size, mode="xywh").convert("xyxy")
        labels = [self.json_category_id_to_contiguous_id[obj["category_id"]] for obj in anno]
        target.add_field("labels", torch.tensor(labels, dtype=torch.int64))
        if self.with_masks:
            try:
                masks = SegmentationMask.from_coco([obj["segmentation"] for obj in anno], img.size)
            except MaskError as err:
                raise DataError(f"image {img_id} ({path}): bad segmentation: {err}") from None
            target.add_field("masks", masks)
        target = target.clip_to_image(remove_empty=True)
        if self.transforms is not None:
            img, target = self.transforms(img, target)
        return img, target, index

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.source}: {len(self)} images, "
            f"{len(self.categories)} categories, {self.num_bad} bad skipped)"
        )
