"""COCO evaluation of per-image predictions, with faster-coco-eval when installed, else pycocotools.

Predictions are BoxLists in the network's input size. Each image's is turned, as soon as it is
made, into a compact ImageResult at the original size: xywh boxes with the legacy +1 width, json
category ids, and masks pasted and RLE-encoded at the original size as maskrcnn-benchmark does
(boxes resized to the image first, each M x M probability map pasted into its box, one
threshold). Both evaluators give the same numbers; the 12-number summary is logged as
pycocotools prints it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rcnn.modeling.roi_heads.mask_head.inference import (
    paste_masks_in_image,
    paste_masks_subpixel,
)
from rcnn.structures.bounding_box import BoxList

STAT_NAMES = (
    "ap",
    "ap50",
    "ap75",
    "ap_s",
    "ap_m",
    "ap_l",
    "ar1",
    "ar10",
    "ar100",
    "ar_s",
    "ar_m",
    "ar_l",
)

# reference: maskrcnn-benchmark's integer-box paste; subpixel: float box edges (detectron2's)
MASK_PASTES = ("reference", "subpixel")
EVALUATORS = ("faster-coco-eval", "pycocotools")

logger = logging.getLogger("rcnn.eval")


def default_evaluator() -> str:
    """faster-coco-eval when it is installed (the `fast-eval` extra), else pycocotools."""
    return EVALUATORS[0] if importlib.util.find_spec("faster_coco_eval") else EVALUATORS[1]


@dataclass
class ImageResult:
    """One image's detections as COCO results need them, compact enough to keep for a whole
    COCO-val run: xywh boxes at the original size, scores, json category ids, RLE masks."""

    image_id: int
    boxes: np.ndarray
    scores: np.ndarray
    category_ids: np.ndarray
    rles: list[dict] | None = None


def image_result(
    idx: int,
    pred: BoxList,
    dataset,
    mask_threshold: float = 0.5,
    mask_chunk: int = 8,
    mask_paste: str = "reference",
) -> ImageResult:
    """Dataset image `idx`'s prediction (at network input size) as an ImageResult, its masks
    as RLEs at the original size (see `mask_rles`); no full-size mask outlives this call."""
    info = dataset.get_img_info(idx)
    width, height = int(info["width"]), int(info["height"])
    to_json = dataset.contiguous_category_id_to_json_id
    pred = pred.to("cpu")
    json_ids = _json_ids(pred.get_field("labels"), to_json)
    # a model with more classes than the dataset (COCO weights on other data): drop the rest
    known = json_ids >= 0
    if not bool(known.all()):
        pred, json_ids = pred[known], json_ids[known]
    rles = None
    if pred.has_field("mask"):
        rles = mask_rles(pred, height, width, mask_threshold, mask_chunk, mask_paste)
    pred = pred.resize((width, height))
    return ImageResult(
        image_id=int(dataset.id_to_img_map[idx]),
        boxes=pred.convert("xywh").bbox.float().numpy(),
        scores=pred.get_field("scores").float().numpy(),
        category_ids=json_ids.numpy(),
        rles=rles,
    )


def _json_ids(labels: torch.Tensor, to_json: dict[int, int]) -> torch.Tensor:
    """The COCO category id of each contiguous label, -1 for a label the dataset lacks."""
    table = torch.full((max(to_json, default=0) + 2,), -1, dtype=torch.int64)
    table[list(to_json)] = torch.tensor(list(to_json.values()), dtype=torch.int64)
    # labels past the table (or negative) index its last slot, which stays -1
    index = labels.long().where((labels >= 0) & (labels < len(table)), len(table) - 1)
    return table[index]


def mask_rles(
    pred: BoxList,
    height: int,
    width: int,
    threshold: float = 0.5,
    chunk: int = 8,
    paste: str = "reference",
) -> list[dict]:
    """COCO RLEs, at image size (height, width), of a prediction's masks at network input
    size. As maskrcnn-benchmark scores them: the boxes are resized to the image size first,
    then each M x M probability map is pasted into its box there and thresholded once (`paste`
    "subpixel" keeps the box edges in float). Masks the model already pasted at its input size
    (POSTPROCESS_MASKS) can only be resized. `chunk` detections are pasted and encoded at a
    time, so memory stays bounded."""
    if paste not in MASK_PASTES:
        raise ValueError(f"mask paste must be one of {', '.join(MASK_PASTES)}, got {paste!r}")
    masks = pred.get_field("mask")
    boxes = pred.resize((width, height)).convert("xyxy").bbox
    return [
        rle
        for first in range(0, len(pred), chunk)
        for rle in _encode(
            _full_image_masks(
                masks[first : first + chunk],
                boxes[first : first + chunk],
                height,
                width,
                threshold,
                paste,
            )
        )
    ]


def _full_image_masks(
    masks: torch.Tensor,
    boxes: torch.Tensor,
    height: int,
    width: int,
    threshold: float,
    paste: str,
) -> torch.Tensor:
    """uint8 [N, 1, height, width]: probabilities pasted into their (image-size) boxes."""
    if not masks.is_floating_point():  # already binary at the input size: a resize is all left
        return _at_size(masks.to(torch.uint8), height, width)
    if paste == "subpixel":
        return paste_masks_subpixel(masks, boxes, height, width, threshold)
    return paste_masks_in_image(masks, boxes, height, width, threshold, padding=1)


def _at_size(masks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Binary masks brought to (height, width) by a bilinear resize and a 0.5 threshold."""
    if masks.shape[-2:] == (height, width):
        return masks
    resized = F.interpolate(
        masks.float(), size=(height, width), mode="bilinear", align_corners=False
    )
    return (resized >= 0.5).to(torch.uint8)


def _encode(masks: torch.Tensor) -> list[dict]:
    from pycocotools import mask as mask_util

    # [N, 1, H, W] -> Fortran-ordered [H, W, N], the layout pycocotools encodes
    rles = mask_util.encode(np.asfortranarray(masks[:, 0].permute(1, 2, 0).numpy()))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def to_coco(results: Iterable[ImageResult], iou_type: str) -> list[dict]:
    """COCO results json entries ('bbox' or 'segm') of every image's ImageResult."""
    entries = []
    for res in results:
        if iou_type == "segm" and res.rles is None:
            continue
        for i, (score, cat) in enumerate(zip(res.scores, res.category_ids, strict=True)):
            entry = {"image_id": res.image_id, "category_id": int(cat), "score": float(score)}
            if iou_type == "bbox":
                entry["bbox"] = [round(float(v), 3) for v in res.boxes[i]]
            else:
                entry["segmentation"] = res.rles[i]
            entries.append(entry)
    return entries


def evaluate_coco(
    coco_gt, results: list[dict], iou_type: str, evaluator: str | None = None
) -> tuple[dict[str, float], str]:
    """Run COCOeval (`evaluator`, default: `default_evaluator()`); return the 12 stats by name
    and the printed summary text. The loaders add fields to `results`' entries."""
    evaluator = evaluator or default_evaluator()
    if evaluator not in EVALUATORS:
        raise ValueError(f"evaluator must be one of {', '.join(EVALUATORS)}, got {evaluator!r}")
    if not results:  # COCO.loadRes refuses an empty list; an empty result scores zero
        return dict.fromkeys(STAT_NAMES, 0.0), f"{iou_type}: no detections"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        if evaluator == "faster-coco-eval":
            from faster_coco_eval import COCO, COCOeval_faster

            gt = COCO(coco_gt.dataset)
            ev = COCOeval_faster(gt, gt.loadRes(results), iou_type, print_function=print)
        else:
            from pycocotools.cocoeval import COCOeval

            ev = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # faster-coco-eval appends more stats (AR at 0.5, 0.75) after pycocotools' twelve
    stats = list(ev.stats)[: len(STAT_NAMES)]
    return {n: float(v) for n, v in zip(STAT_NAMES, stats, strict=True)}, buf.getvalue()


def evaluate_predictions(
    predictions: dict[int, BoxList],
    dataset,
    iou_types: tuple[str, ...] = ("bbox",),
    output_dir: str | Path | None = None,
    evaluator: str | None = None,
) -> dict[str, dict[str, float]]:
    """Score BoxList predictions (by dataset index) with the dataset's COCO ground truth."""
    results = {idx: image_result(idx, pred, dataset) for idx, pred in predictions.items()}
    return evaluate_results(results, dataset, iou_types, output_dir, evaluator)


def evaluate_results(
    results: dict[int, ImageResult],
    dataset,
    iou_types: tuple[str, ...] = ("bbox",),
    output_dir: str | Path | None = None,
    evaluator: str | None = None,
) -> dict[str, dict[str, float]]:
    """Score ImageResults (by dataset index) with COCO ground truth; save the results json."""
    scores = {}
    for iou_type in iou_types:
        entries = to_coco(results.values(), iou_type)
        if output_dir:
            path = Path(output_dir) / f"{iou_type}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(entries))
        stats, summary = evaluate_coco(dataset.coco, entries, iou_type, evaluator)
        logger.info("Evaluate annotation type *%s*\n%s", iou_type, summary.rstrip())
        scores[iou_type] = stats
    return scores
