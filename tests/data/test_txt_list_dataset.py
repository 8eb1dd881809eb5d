"""TxtListDataset: the plain-text list format, and its COCO ground truth for evaluation."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch
from pycocotools.cocoeval import COCOeval

from rcnn.data import TxtListDataset


def write_list(root: Path, lines: list[str]) -> tuple[str, str]:
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    (root / "classes.txt").write_text("circle\nsquare\ntriangle\n")
    return str(root / "list.txt"), str(root / "classes.txt")


def test_parse_targets_and_coco_ground_truth(make_set) -> None:
    root = make_set(train=3, val=0)
    list_file, classes = write_list(
        root,
        [
            "train/train_000001.jpg 10,20,50,60,0 5,5,30,40,2",
            "# a comment line",
            "",
            "train/train_000002.jpg 0,0,95,79,1",
            "train/train_000003.jpg",  # no boxes: dropped for training, kept for testing
        ],
    )
    ds = TxtListDataset(list_file, str(root), classes, remove_images_without_annotations=True)
    assert len(ds) == 2 and ds.ids == [1, 4]  # ids are line numbers
    assert [r.image_id for r in ds.removed_empty] == [5]
    img, target, _ = ds[0]
    assert img.size == (96, 80)
    torch.testing.assert_close(target.bbox, torch.tensor([[10.0, 20, 50, 60], [5, 5, 30, 40]]))
    assert target.get_field("labels").tolist() == [1, 3]
    assert ds[1][1].bbox.tolist() == [[0.0, 0.0, 95.0, 79.0]]
    assert ds.get_img_info(1)["width"] == 96
    # Legacy +1 widths, so the evaluator's xyxy -> xywh of a perfect prediction matches exactly.
    gt = ds.coco
    assert gt.loadAnns(gt.getAnnIds(imgIds=1))[0]["bbox"] == [10.0, 20.0, 41.0, 41.0]
    test_ds = TxtListDataset(list_file, str(root), classes, remove_images_without_annotations=False)
    assert len(test_ds) == 3
    dets = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": 1.0,
        }
        for a in gt.loadAnns(gt.getAnnIds())
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, gt.loadRes(dets), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)
