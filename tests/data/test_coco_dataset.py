"""COCODataset on a synthetic set: targets match the json, in maskrcnn-benchmark's conventions."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rcnn.data import COCODataset, make_dataset
from rcnn.data.synthetic import ann_file, img_dir, register_synthetic
from rcnn.structures.segmentation_mask import SegmentationMask


def _dataset(root: Path, split: str = "train", **kwargs) -> COCODataset:
    return COCODataset(str(ann_file(root, split)), str(img_dir(root, split)), **kwargs)


def test_targets_match_the_json(make_set) -> None:
    root = make_set(train=5, val=0)
    data = json.loads(ann_file(root, "train").read_text())
    ds = _dataset(root, remove_images_without_annotations=True)
    assert len(ds) == 5 and ds.ids == [1, 2, 3, 4, 5]
    assert ds.categories == {1: "circle", 2: "square", 3: "triangle"}
    assert ds.json_category_id_to_contiguous_id == {1: 1, 2: 2, 3: 3}
    assert ds.get_img_info(2)["width"] == 96 and ds.get_img_info(2)["height"] == 80
    img, target, idx = ds[2]
    assert idx == 2 and img.size == (96, 80) and img.mode == "RGB"
    anns = [a for a in data["annotations"] if a["image_id"] == 3]
    expected = torch.tensor(
        [[x, y, x + w - 1, y + h - 1] for x, y, w, h in (a["bbox"] for a in anns)]
    )
    assert target.mode == "xyxy" and target.size == (96, 80)
    torch.testing.assert_close(target.bbox, expected)
    assert target.get_field("labels").tolist() == [a["category_id"] for a in anns]
    masks = target.get_field("masks")
    assert isinstance(masks, SegmentationMask) and len(masks) == len(anns)
    dense = masks.get_mask_tensor()
    for a, m in zip(anns, dense, strict=True):
        assert abs(m.sum().item() - a["area"]) <= 0.15 * a["area"] + 10
        ys, xs = torch.nonzero(m, as_tuple=True)
        assert (
            xs.min().item() >= int(a["bbox"][0]) and xs.max().item() <= a["bbox"][0] + a["bbox"][2]
        )


def test_noncontiguous_category_ids_and_crowd(make_set) -> None:
    root = make_set(train=3, val=0)
    path = ann_file(root, "train")
    data = json.loads(path.read_text())
    remap = {1: 7, 2: 3, 3: 12}
    for c in data["categories"]:
        c["id"] = remap[c["id"]]
    for a in data["annotations"]:
        a["category_id"] = remap[a["category_id"]]
    first = next(a for a in data["annotations"] if a["image_id"] == 1)
    first["iscrowd"] = 1
    path.write_text(json.dumps(data))
    ds = _dataset(root, remove_images_without_annotations=True)
    # contiguous ids follow the json's category order, as maskrcnn-benchmark
    assert ds.json_category_id_to_contiguous_id == {7: 1, 3: 2, 12: 3}
    assert ds.contiguous_category_id_to_json_id == {1: 7, 2: 3, 3: 12}
    _, target, _ = ds[0]
    non_crowd = [a for a in data["annotations"] if a["image_id"] == 1 and not a["iscrowd"]]
    assert len(target) == len(non_crowd)
    assert target.get_field("labels").tolist() == [
        ds.json_category_id_to_contiguous_id[a["category_id"]] for a in non_crowd
    ]


def test_catalog_registration_and_masks_off(make_set) -> None:
    root = make_set(train=2, val=2)
    train_name, val_name = register_synthetic(root)
    assert train_name.endswith("_train") and val_name.endswith("_val")
    ds = make_dataset(val_name, is_train=False)
    assert isinstance(ds, COCODataset) and len(ds) == 2
    _, target, _ = ds[0]
    assert target.fields() == ["labels"]
