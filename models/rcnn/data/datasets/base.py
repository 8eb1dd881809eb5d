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
from rcnn.data.datasets.paths import image_path
from rcnn.structures.bounding_box import TO_REMOVE, BoxList
from rcnn.structures.segmentation_mask import MaskError, SegmentationMask, check_segmentation

logger = logging.getLogger(__name__)

Transforms = Callable[[Image.Image, BoxList], tuple[Any, BoxList]]
BOX_POLICIES = ("clip", "reject")
# pixels a box may extend past an edge before it counts (float rounding in real COCO boxes)
OUTSIDE_TOLERANCE = 1.0


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


def _box_problem(bbox: Any) -> str:
    """Why `bbox` is not an (x, y, w, h) box of positive size, or "" when it is one."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return f"malformed bbox {bbox!r}"
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox):
        return f"non-finite bbox {bbox}"
    if bbox[2] <= 0 or bbox[3] <= 0:
        return f"box with non-positive size (x, y, w, h) {bbox}"
    return ""


def box_outside(bbox: Sequence[float], size: tuple[int, int]) -> str:
    """ "outside" when no pixel of the (x, y, w, h) box is in the image, "past" when it extends
    more than OUTSIDE_TOLERANCE pixels beyond an edge, else ""."""
    w, h = size
    x1, y1 = bbox[0], bbox[1]
    x2, y2 = x1 + bbox[2] - TO_REMOVE, y1 + bbox[3] - TO_REMOVE
    cx1, cx2 = min(max(x1, 0), w - TO_REMOVE), min(max(x2, 0), w - TO_REMOVE)
    cy1, cy2 = min(max(y1, 0), h - TO_REMOVE), min(max(y2, 0), h - TO_REMOVE)
    if not (cx2 > cx1 and cy2 > cy1):
        return "outside"
    tol = OUTSIDE_TOLERANCE
    if x1 < -tol or y1 < -tol or x2 > w - TO_REMOVE + tol or y2 > h - TO_REMOVE + tol:
        return "past"
    return ""


def _annotation_problem(
    ann: dict, size: tuple[int, int], cats: dict, with_masks: bool, box_policy: str
) -> str:
    """Why an annotation cannot be trained on, or "" when it is fine."""
    bbox = ann.get("bbox")
    problem = _box_problem(bbox)
    if problem:
        return problem
    where = box_outside(bbox, size)
    if where == "outside":
        return f"box (x, y, w, h) {bbox} lies outside the {size[0]}x{size[1]} image"
    if where == "past" and box_policy == "reject":
        return (
            f"box (x, y, w, h) {bbox} extends past the {size[0]}x{size[1]} image "
            "(DATASETS.BOXES_OUTSIDE_IMAGE reject; set clip to clip it)"
        )
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


def _crowd_problem(ann: dict, size: tuple[int, int], with_masks: bool) -> str:
    """Crowd regions are no target, but evaluation reads their box and (masks on) region."""
    problem = _box_problem(ann.get("bbox"))
    if problem or not with_masks:
        return problem
    try:
        check_segmentation(ann.get("segmentation"), size)
    except MaskError as err:
        return f"bad crowd segmentation: {err}"
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
        box_policy: str = "clip",
        allow_absolute_paths: bool = False,
    ) -> None:
        if box_policy not in BOX_POLICIES:
            raise ValueError(f"box_policy must be one of {BOX_POLICIES}, got {box_policy!r}")
        self.coco = coco
        self.root = img_dir
        self.source = source
        self.box_policy = box_policy
        self.allow_absolute_paths = allow_absolute_paths
        self.clipped_boxes = 0
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
        self._check_not_empty(remove_images_without_annotations)
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
        located = [
            image_path(self.root, self.coco.imgs[i].get("file_name"), self.allow_absolute_paths)
            for i in ids
        ]
        paths = [path for path, _ in located]
        if image_sizes is None:
            # refused paths are never opened, not even to read a header
            probed_inside = iter(probe_images([p for p, refused in located if not refused]))
            image_sizes = {
                i: refused or next(probed_inside)
                for i, (_, refused) in zip(ids, located, strict=True)
            }
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
                crowd = bool(ann.get("iscrowd", 0))
                problem = (
                    _crowd_problem(ann, size, self.with_masks)
                    if crowd
                    else _annotation_problem(
                        ann, size, self.coco.cats, self.with_masks, self.box_policy
                    )
                )
                if problem:
                    bad.append(BadItem(img_id, path, f"annotation {ann.get('id')}: {problem}"))
                    continue
                valid.append(ann)  # crowd too: maskrcnn-benchmark's filter counts it
                if not crowd:  # crowd regions are not targets, as in maskrcnn-benchmark
                    good.append(ann)
                    self.clipped_boxes += box_outside(ann["bbox"], size) == "past"
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
        if self.clipped_boxes:
            logger.warning(
                "%s: clipped %d box(es) extending past their image (DATASETS.BOXES_OUTSIDE_IMAGE "
                "clip; reject refuses them)",
                self.source,
                self.clipped_boxes,
            )
        return kept, annos, empty

    def _check_not_empty(self, training: bool) -> None:
        """A set with no image, or (training) no target at all, would run on nothing."""
        if not self.ids:
            why = f"{len(self.removed_empty)} without usable annotation, {self.num_bad} bad"
            raise DataError(
                f"{self.source}: no image left to use ({len(self.coco.imgs)} listed: {why})"
            )
        if training and not any(self._annos[i] for i in self.ids):
            raise DataError(
                f"{self.source}: no annotation to train on (every usable one is iscrowd=1)"
            )

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
