"""COCO evaluation of per-image predictions with pycocotools.

Predictions are BoxLists in the network's input size; they are resized to the original image,
turned into COCO results (xywh boxes with the legacy +1 width, json category ids, RLE masks),
and scored with COCOeval. The 12-number summary is printed as pycocotools prints it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

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

logger = logging.getLogger("rcnn.eval")


def boxes_to_coco(predictions: dict[int, BoxList], dataset) -> list[dict]:
    """COCO 'bbox' results; predictions map dataset index -> BoxList at network input size."""
    results = []
    for idx, pred in predictions.items():
        if len(pred) == 0:
            continue
        info = dataset.get_img_info(idx)
        pred = pred.resize((info["width"], info["height"])).convert("xywh")
        boxes = pred.bbox.float().cpu().numpy()
        scores = pred.get_field("scores").float().cpu().numpy()
        labels = pred.get_field("labels").cpu().numpy()
        image_id = dataset.id_to_img_map[idx]
        to_json = dataset.contiguous_category_id_to_json_id
        results.extend(
            {
                "image_id": int(image_id),
                "category_id": int(to_json[int(lab)]),
                "bbox": [round(float(v), 3) for v in box],
                "score": float(s),
            }
            for box, s, lab in zip(boxes, scores, labels, strict=True)
        )
    return results


def masks_to_coco(predictions: dict[int, BoxList], dataset) -> list[dict]:
    """COCO 'segm' results from the `mask` field (full-image binary masks, N x 1 x H x W)."""
    from pycocotools import mask as mask_util

    results = []
    for idx, pred in predictions.items():
        if len(pred) == 0 or not pred.has_field("mask"):
            continue
        info = dataset.get_img_info(idx)
        masks = _at_size(pred.get_field("mask"), info["height"], info["width"]).numpy()
        scores = pred.get_field("scores").float().cpu().numpy()
        labels = pred.get_field("labels").cpu().numpy()
        image_id = dataset.id_to_img_map[idx]
        to_json = dataset.contiguous_category_id_to_json_id
        rles = mask_util.encode(np.asfortranarray(masks[:, 0].transpose(1, 2, 0).astype(np.uint8)))
        for rle, s, lab in zip(rles, scores, labels, strict=True):
            rle["counts"] = rle["counts"].decode("ascii")
            results.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(to_json[int(lab)]),
                    "segmentation": rle,
                    "score": float(s),
                }
            )
    return results


def _at_size(masks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Full-image masks pasted at the network's input size, brought to the original size."""
    if masks.shape[-2:] == (height, width):
        return masks.cpu().to(torch.uint8)
    resized = F.interpolate(
        masks.cpu().float(), size=(height, width), mode="bilinear", align_corners=False
    )
    return (resized >= 0.5).to(torch.uint8)


def evaluate_coco(coco_gt, results: list[dict], iou_type: str) -> tuple[dict[str, float], str]:
    """Run COCOeval; return the 12 stats by name and the printed summary text."""
    from pycocotools.cocoeval import COCOeval

    if not results:  # COCO.loadRes refuses an empty list; an empty result scores zero
        return dict.fromkeys(STAT_NAMES, 0.0), f"{iou_type}: no detections"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {n: float(v) for n, v in zip(STAT_NAMES, ev.stats, strict=True)}, buf.getvalue()


def evaluate_predictions(
    predictions: dict[int, BoxList],
    dataset,
    iou_types: tuple[str, ...] = ("bbox",),
    output_dir: str | Path | None = None,
) -> dict[str, dict[str, float]]:
    """Score predictions on a dataset with COCO ground truth; save the results json files."""
    converters = {"bbox": boxes_to_coco, "segm": masks_to_coco}
    scores = {}
    for iou_type in iou_types:
        results = converters[iou_type](predictions, dataset)
        if output_dir:
            path = Path(output_dir) / f"{iou_type}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results))
        stats, summary = evaluate_coco(dataset.coco, results, iou_type)
        logger.info("Evaluate annotation type *%s*\n%s", iou_type, summary.rstrip())
        scores[iou_type] = stats
    return scores
