"""COCO scoring as the reference scores it: faster-coco-eval and pycocotools agree, and masks are
pasted at the original image size in one step, as maskrcnn-benchmark pastes them."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_util

from rcnn.data.datasets.coco import COCODataset
from rcnn.data.synthetic import SyntheticSpec, generate, img_dir
from rcnn.engine.coco_eval import (
    STAT_NAMES,
    default_evaluator,
    evaluate_coco,
    image_result,
    mask_rles,
    to_coco,
)
from rcnn.structures.bounding_box import BoxList

WIDTH, HEIGHT, SCALE = 128, 96, 2.5  # the network saw each image at 320 x 240


@pytest.fixture(scope="module")
def val_set(tmp_path_factory) -> COCODataset:
    root = tmp_path_factory.mktemp("coco_eval")
    files = generate(SyntheticSpec(0, 12, WIDTH, HEIGHT, seed=5), root)
    return COCODataset(str(files["val"]), str(img_dir(root, "val")), False)


def _gt_masks(dataset: COCODataset, image_id: int) -> tuple[np.ndarray, list[dict]]:
    anns = dataset.coco.loadAnns(dataset.coco.getAnnIds(imgIds=[image_id]))
    masks = np.stack([dataset.coco.annToMask(a) for a in anns])
    return masks, anns


def _predictions(dataset: COCODataset, seed: int = 0) -> dict[int, BoxList]:
    """Each image's ground truth as detections at the input size, boxes jittered, the 28 x 28
    maps the ground-truth mask's crop plus noise (scores random): realistic, imperfect."""
    gen = torch.Generator().manual_seed(seed)
    size = (int(WIDTH * SCALE), int(HEIGHT * SCALE))
    preds = {}
    for idx in range(len(dataset)):
        masks, anns = _gt_masks(dataset, dataset.id_to_img_map[idx])
        xywh = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32)
        xyxy = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:] - 1], dim=1)
        xyxy = xyxy + torch.randn(xyxy.shape, generator=gen) * 1.5
        maps = []
        for mask, (x0, y0, x1, y1) in zip(masks, xyxy.round().long().tolist(), strict=True):
            x0, y0 = max(x0, 0), max(y0, 0)
            crop = torch.from_numpy(mask[y0 : y1 + 1, x0 : x1 + 1]).float()
            crop = crop if crop.numel() else torch.zeros(1, 1)
            maps.append(F.interpolate(crop[None, None], (28, 28), mode="bilinear")[0])
        probs = torch.stack(maps) + 0.2 * torch.randn(len(maps), 1, 28, 28, generator=gen)
        pred = BoxList(xyxy * SCALE, size)
        pred.add_field("scores", torch.rand(len(anns), generator=gen))
        pred.add_field("labels", torch.tensor([a["category_id"] for a in anns]))
        pred.add_field("mask", probs.clamp(0, 1))
        preds[idx] = pred
    return preds


def _entries(dataset: COCODataset, iou_type: str, paste: str = "reference") -> list[dict]:
    preds = _predictions(dataset)
    results = [image_result(i, p, dataset, mask_paste=paste) for i, p in preds.items()]
    return to_coco(results, iou_type)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_faster_coco_eval_gives_pycocotools_ap(val_set, iou_type):
    entries = _entries(val_set, iou_type)
    slow, _ = evaluate_coco(val_set.coco, copy.deepcopy(entries), iou_type, "pycocotools")
    fast, summary = evaluate_coco(
        val_set.coco, copy.deepcopy(entries), iou_type, "faster-coco-eval"
    )
    assert 0.2 < slow["ap"] < 0.99  # imperfect detections: every stat has something to agree on
    for name in STAT_NAMES:
        assert fast[name] == pytest.approx(slow[name], abs=1e-4), name
    assert "Average Precision" in summary


def test_the_evaluator_is_faster_coco_eval_when_installed_else_pycocotools(monkeypatch):
    assert default_evaluator() == "faster-coco-eval"  # requirements-test.txt installs it
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)
    assert default_evaluator() == "pycocotools"


def reference_paste(prob: np.ndarray, box: np.ndarray, height: int, width: int) -> np.ndarray:
    """maskrcnn-benchmark's published paste, one detection at a time: pad the M x M map by a
    pixel, scale the box by (M + 2) / M about its centre, truncate it to integers, resize the
    padded map bilinearly to the box's +1 size, threshold at 0.5, copy the part in the image."""
    m = prob.shape[-1]
    padded = np.zeros((m + 2, m + 2), np.float32)
    padded[1:-1, 1:-1] = prob
    scale = (m + 2) / m
    w_half, h_half = (box[2] - box[0]) * 0.5 * scale, (box[3] - box[1]) * 0.5 * scale
    x_c, y_c = (box[2] + box[0]) * 0.5, (box[3] + box[1]) * 0.5
    x0, y0, x1, y1 = (int(v) for v in (x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half))
    w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
    resized = F.interpolate(
        torch.from_numpy(padded)[None, None], size=(h, w), mode="bilinear", align_corners=False
    )[0, 0].numpy()
    binary = (resized > 0.5).astype(np.uint8)
    out = np.zeros((height, width), np.uint8)
    ix0, ix1, iy0, iy1 = max(x0, 0), min(x1 + 1, width), max(y0, 0), min(y1 + 1, height)
    if ix0 < ix1 and iy0 < iy1:
        out[iy0:iy1, ix0:ix1] = binary[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    return out


@pytest.mark.parametrize("smooth", [True, False])
def test_default_paste_is_the_references_at_the_original_size(smooth):
    gen = torch.Generator().manual_seed(1)
    n, in_size = 40, (int(WIDTH * SCALE), int(HEIGHT * SCALE))
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([280.0, 200.0]) - 20  # some cross edges
    boxes = torch.cat([xy, xy + 8 + torch.rand(n, 2, generator=gen) * 120], dim=1)
    probs = (
        torch.rand(n, 1, 7, 7, generator=gen) if smooth else torch.rand(n, 1, 28, 28, generator=gen)
    )
    probs = F.interpolate(probs, (28, 28), mode="bilinear") if smooth else probs
    pred = BoxList(boxes, in_size)
    pred.add_field("mask", probs)
    rles = mask_rles(pred, HEIGHT, WIDTH)
    ours = mask_util.decode(rles).transpose(2, 0, 1)
    at_size = pred.resize((WIDTH, HEIGHT)).bbox.numpy()
    ref = np.stack(
        [
            reference_paste(p[0], b, HEIGHT, WIDTH)
            for p, b in zip(probs.numpy(), at_size, strict=True)
        ]
    )
    inter = (ours & ref).reshape(n, -1).sum(1)
    union = (ours | ref).reshape(n, -1).sum(1)
    assert union.min() > 0
    assert (inter / union).tolist() == [1.0] * n


def test_subpixel_paste_scores_the_same_detections_better(val_set):
    """At a small original size the reference rounds each box to whole pixels; float box edges
    do not, and score these imperfect masks at least as well (one threshold both ways)."""
    ref, _ = evaluate_coco(val_set.coco, _entries(val_set, "segm"), "segm")
    sub, _ = evaluate_coco(val_set.coco, _entries(val_set, "segm", "subpixel"), "segm")
    assert sub["ap"] >= ref["ap"] and sub["ap75"] >= ref["ap75"]


def test_an_unknown_paste_mode_is_refused():
    pred = BoxList(torch.tensor([[1.0, 1.0, 9.0, 9.0]]), (20, 20))
    pred.add_field("mask", torch.ones(1, 1, 28, 28))
    with pytest.raises(ValueError, match="reference, subpixel"):
        mask_rles(pred, 20, 20, paste="nearest")
