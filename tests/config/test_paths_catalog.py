"""Dataset names resolve under $DATASET_DIR; sets registered at run time join them."""

import os

import pytest

from rcnn.config import DatasetCatalog, DatasetCatalogError


@pytest.fixture(autouse=True)
def fresh_catalog(monkeypatch, tmp_path):
    monkeypatch.setattr(DatasetCatalog, "DATASETS", dict(DatasetCatalog.DATASETS))
    monkeypatch.setenv("DATASET_DIR", str(tmp_path / "data"))


def test_coco_2017_under_dataset_dir(tmp_path):
    entry = DatasetCatalog.get("coco_2017_train")
    assert entry == {
        "factory": "COCODataset",
        "args": {
            "root": str(tmp_path / "data" / "coco" / "train2017"),
            "ann_file": str(
                tmp_path / "data" / "coco" / "annotations" / "instances_train2017.json"
            ),
        },
    }
    val = DatasetCatalog.get("coco_2017_val")["args"]
    assert val["ann_file"].endswith("coco/annotations/instances_val2017.json")


@pytest.mark.parametrize(
    ("name", "images", "annotations"),
    [
        ("coco_2014_train", "train2014", "instances_train2014.json"),
        ("coco_2014_val", "val2014", "instances_val2014.json"),
        ("coco_2014_minival", "val2014", "instances_minival2014.json"),
        ("coco_2014_valminusminival", "val2014", "instances_valminusminival2014.json"),
    ],
)
def test_maskrcnn_benchmark_2014_names(name, images, annotations):
    args = DatasetCatalog.get(name)["args"]
    assert args["root"].endswith(f"coco/{images}")
    assert args["ann_file"].endswith(f"coco/annotations/{annotations}")


def test_default_dataset_dir_is_relative_datasets(monkeypatch):
    monkeypatch.delenv("DATASET_DIR")
    root = DatasetCatalog.get("coco_2017_val")["args"]["root"]
    assert root == os.path.abspath("datasets/coco/val2017")


def test_register_coco_format_set(tmp_path):
    DatasetCatalog.register("synthetic_train", tmp_path / "imgs", tmp_path / "ann.json")
    assert DatasetCatalog.get("synthetic_train") == {
        "factory": "COCODataset",
        "args": {"root": str(tmp_path / "imgs"), "ann_file": str(tmp_path / "ann.json")},
    }
    assert "synthetic_train" in DatasetCatalog.names()


def test_register_relative_paths_resolve_under_dataset_dir(tmp_path):
    DatasetCatalog.register("mine", "mine/images", "mine/ann.json")
    assert DatasetCatalog.get("mine")["args"]["root"] == str(tmp_path / "data" / "mine" / "images")


def test_register_txt_list_set(tmp_path):
    DatasetCatalog.register_txt_list(
        "parts_val", tmp_path / "val.txt", tmp_path / "images", tmp_path / "classes.txt"
    )
    assert DatasetCatalog.get("parts_val") == {
        "factory": "TxtListDataset",
        "args": {
            "list_file": str(tmp_path / "val.txt"),
            "img_dir": str(tmp_path / "images"),
            "classes_file": str(tmp_path / "classes.txt"),
        },
    }


def test_registering_the_same_name_twice(tmp_path):
    DatasetCatalog.register("s", "a", "a.json")
    DatasetCatalog.register("s", "a", "a.json")
    with pytest.raises(DatasetCatalogError, match="already registered"):
        DatasetCatalog.register("s", "b", "b.json")
    DatasetCatalog.register("s", "b", "b.json", replace=True)
    assert DatasetCatalog.get("s")["args"]["root"].endswith("b")


def test_unknown_name_lists_known_names():
    with pytest.raises(DatasetCatalogError) as info:
        DatasetCatalog.get("coco_2017_trian")
    message = str(info.value)
    assert "unknown dataset 'coco_2017_trian'" in message
    assert "coco_2017_train" in message and "coco_2014_minival" in message
    assert "register" in message
