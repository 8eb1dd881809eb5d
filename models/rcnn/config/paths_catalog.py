"""Dataset names -> where their files are (``DATASETS.TRAIN`` / ``DATASETS.TEST`` use the names).

Relative paths are under ``$DATASET_DIR`` (default ``./datasets``), read when a name is looked up,
in maskrcnn-benchmark's layout: ``$DATASET_DIR/coco/train2017``,
``$DATASET_DIR/coco/annotations/instances_train2017.json``. Synthetic and user sets are added at
run time with ``DatasetCatalog.register`` / ``register_txt_list``. ``get`` answers
``{"factory": <dataset class name in rcnn.data>, "args": {...}}``; the data package builds it.
"""

import os
from typing import Any, ClassVar

COCO = "COCODataset"
TXT_LIST = "TxtListDataset"


class DatasetCatalogError(KeyError):
    """An unknown or conflicting dataset name."""

    def __str__(self) -> str:
        return str(self.args[0])


def _coco(img_dir: str, ann_file: str) -> dict[str, str]:
    return {"factory": COCO, "img_dir": img_dir, "ann_file": ann_file}


class DatasetCatalog:
    """Known names: COCO 2017, maskrcnn-benchmark's COCO 2014 splits, and registered sets."""

    DATASETS: ClassVar[dict[str, dict[str, str]]] = {
        "coco_2017_train": _coco("coco/train2017", "coco/annotations/instances_train2017.json"),
        "coco_2017_val": _coco("coco/val2017", "coco/annotations/instances_val2017.json"),
        "coco_2017_test_dev": _coco(
            "coco/test2017", "coco/annotations/image_info_test-dev2017.json"
        ),
        "coco_2014_train": _coco("coco/train2014", "coco/annotations/instances_train2014.json"),
        "coco_2014_val": _coco("coco/val2014", "coco/annotations/instances_val2014.json"),
        "coco_2014_minival": _coco("coco/val2014", "coco/annotations/instances_minival2014.json"),
        "coco_2014_valminusminival": _coco(
            "coco/val2014", "coco/annotations/instances_valminusminival2014.json"
        ),
    }

    @staticmethod
    def data_dir() -> str:
        """The root of relative dataset paths: ``$DATASET_DIR`` or ``./datasets``."""
        return os.environ.get("DATASET_DIR") or "datasets"

    @classmethod
    def names(cls) -> list[str]:
        return sorted(cls.DATASETS)

    @classmethod
    def register(cls, name: str, img_dir: str, ann_file: str, replace: bool = False) -> None:
        """Add a COCO-format set (synthetic or the user's own) under ``name``."""
        cls._add(name, _coco(os.fspath(img_dir), os.fspath(ann_file)), replace)

    @classmethod
    def register_txt_list(
        cls, name: str, list_file: str, img_dir: str, classes_file: str, replace: bool = False
    ) -> None:
        """Add a plain-text list set (one image and its boxes a line) under ``name``."""
        entry = {
            "factory": TXT_LIST,
            "list_file": os.fspath(list_file),
            "img_dir": os.fspath(img_dir),
            "classes_file": os.fspath(classes_file),
        }
        cls._add(name, entry, replace)

    @classmethod
    def get(cls, name: str) -> dict[str, Any]:
        """``{"factory": ..., "args": {...}}`` with paths made absolute against ``data_dir()``."""
        if name not in cls.DATASETS:
            raise DatasetCatalogError(
                f"unknown dataset {name!r}; known: {', '.join(cls.names())}. "
                "Register others with DatasetCatalog.register(name, img_dir, ann_file)"
            )
        entry = dict(cls.DATASETS[name])
        factory = entry.pop("factory")
        root = cls.data_dir()
        args = {key: os.path.abspath(os.path.join(root, path)) for key, path in entry.items()}
        if factory == COCO:
            # maskrcnn-benchmark's COCODataset calls the image folder "root"
            args["root"] = args.pop("img_dir")
        return {"factory": factory, "args": args}

    @classmethod
    def _add(cls, name: str, entry: dict[str, str], replace: bool) -> None:
        old = cls.DATASETS.get(name)
        if old is not None and old != entry and not replace:
            raise DatasetCatalogError(
                f"dataset {name!r} is already registered as {old}; pass replace=True to change it"
            )
        cls.DATASETS[name] = entry
