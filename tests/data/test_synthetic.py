"""The synthetic generator writes real JPEGs and COCO jsons that pycocotools loads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from benchmark.__main__ import main
from benchmark.commands import data as data_command
from rcnn.data.synthetic import SyntheticSpec, ann_file, generate, img_dir


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate(SyntheticSpec(train_images=12, val_images=4, width=160, height=128, seed=7), root)
    return root


def test_counts_and_valid_jpegs(synth_root: Path) -> None:
    for split, count in (("train", 12), ("val", 4)):
        coco = COCO(str(ann_file(synth_root, split)))
        assert len(coco.getImgIds()) == count
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == [
            "circle",
            "square",
            "triangle",
        ]
        files = sorted(img_dir(synth_root, split).glob("*.jpg"))
        assert len(files) == count
        for path in files:
            with Image.open(path) as img:
                assert img.format == "JPEG"
                assert img.size == (160, 128)
                img.load()
        assert len(coco.getAnnIds()) >= count  # at least one object per image


def test_boxes_inside_and_match_polygons(synth_root: Path) -> None:
    coco = COCO(str(ann_file(synth_root, "train")))
    anns = coco.loadAnns(coco.getAnnIds())
    short = 128
    for ann in anns:
        x, y, w, h = ann["bbox"]
        assert x >= 0 and y >= 0 and x + w <= 160 and y + h <= 128
        poly = np.array(ann["segmentation"][0]).reshape(-1, 2)
        np.testing.assert_allclose(poly.min(axis=0), [x, y], atol=0.011)
        np.testing.assert_allclose(poly.max(axis=0), [x + w, y + h], atol=0.011)
        assert 0.08 * short - 0.5 <= max(w, h) <= 0.40 * short + 0.5
        assert ann["iscrowd"] == 0 and ann["category_id"] in (1, 2, 3)
        # The polygon's area agrees with its rasterised mask.
        rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], 128, 160))
        assert abs(float(mask_utils.area(rle)) - ann["area"]) <= 0.1 * ann["area"] + 20
    labels = {ann["category_id"] for ann in anns}
    assert labels == {1, 2, 3}


def test_deterministic_bytes_for_a_seed(tmp_path: Path, synth_root: Path) -> None:
    generate(SyntheticSpec(train_images=12, val_images=4, width=160, height=128, seed=7), tmp_path)
    assert _digest(tmp_path) == _digest(synth_root)
    other = tmp_path / "other"
    generate(SyntheticSpec(train_images=2, val_images=0, width=160, height=128, seed=8), other)
    first = (img_dir(other, "train") / "train_000001.jpg").read_bytes()
    assert first != (img_dir(synth_root, "train") / "train_000001.jpg").read_bytes()


def test_cli_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    data_command.add_parser(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(
        [
            "data",
            "synth",
            "--out",
            str(tmp_path),
            "--images",
            "5",
            "--size",
            "64x96",
            "--seed",
            "3",
            "--val-images",
            "2",
            "--classes",
            "4",
        ]
    )
    assert args.func(args) == 0
    coco = COCO(str(ann_file(tmp_path, "val")))
    assert len(coco.getImgIds()) == 2
    assert len(coco.getCatIds()) == 4
    assert coco.loadImgs(1)[0]["width"] == 96
    assert "wrote 5 train + 2 val images" in capsys.readouterr().out
    bad = ["data", "synth", "--out", str(tmp_path), "--images", "1", "--classes", "9"]
    assert main(bad) == 2
    assert capsys.readouterr().err.count("\n") == 1  # one line, no traceback
