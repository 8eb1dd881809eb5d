"""The data a run measures (`--data`), found or made, and registered in the DatasetCatalog.

Data (`--data`):
    synthetic[:N]          generated on first use into RESULTS/cache/synthetic/<key>/ (key: split,
                           image size, image count, seed, classes) and reused after; N images per
                           split (default 64 train, 64 val, more if a run needs more)
    coco[:DIR]             DIR/{train2017,val2017}, DIR/annotations/instances_{train,val}2017.json
                           (default DIR: $DATASET_DIR/coco)
    txt:LIST[:CLASSES]     a text list (images relative to LIST's folder); CLASSES defaults to
                           classes.txt beside LIST; the same set trains and tests
    config                 the config's own DATASETS.TRAIN / DATASETS.TEST
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yacs.config import CfgNode

from benchmark.errors import UsageError
from rcnn.config import DatasetCatalog
from rcnn.data.synthetic import SHAPE_NAMES, SyntheticSpec, ann_file, generate_split, img_dir

SYNTHETIC_IMAGES = 64  # per split, unless a run needs more
SYNTHETIC_SEED = 0
SYNTHETIC_CLASSES = 3  # the quick configs' classes; larger heads simply see fewer


def _fingerprint(annotations: Path) -> str:
    """sha1 of the annotation (or list) file: the same bytes describe the same images."""
    digest = hashlib.sha1()
    with open(annotations, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha1:{digest.hexdigest()[:16]}"


def synthetic_split(cache: Path, split: str, spec: SyntheticSpec) -> tuple[Path, Path]:
    """(image folder, annotation json) of a cached synthetic split, generated on first use.

    Generated beside its final place and renamed into it, so concurrent runs (the ranks of one
    run, or a sweep's cells) never see half a set; the loser of a race drops its copy."""
    count = spec.train_images if split == "train" else spec.val_images
    key = f"{split}-{spec.width}x{spec.height}-n{count}-seed{spec.seed}-{spec.num_classes}cls"
    root = cache / "synthetic" / key
    if not ann_file(root, split).is_file():
        tmp = root.with_name(f".{key}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        generate_split(spec, tmp, split)
        try:
            os.rename(tmp, root)
        except OSError:  # another process finished first: its set is the same bytes
            shutil.rmtree(tmp, ignore_errors=True)
    return img_dir(root, split), ann_file(root, split)


@dataclass(frozen=True)
class DataSetup:
    """Config overrides that point DATASETS at the data, and what the record says about it."""

    overrides: list[str]
    name: str
    fingerprint: str | None

    def record(self, images: int | None) -> dict[str, Any]:
        return {"name": self.name, "images": images, "fingerprint": self.fingerprint}


def _register_coco(name: str, images: Path, annotations: Path, what: str) -> None:
    for path in (images, annotations):
        if not path.exists():
            raise UsageError(
                f"{what}: {path} not found; expected the COCO 2017 layout "
                "train2017/, val2017/, annotations/instances_{train,val}2017.json"
            )
    DatasetCatalog.register(name, str(images), str(annotations), replace=True)


def _split_data(
    spec: str, split: str, cfg: CfgNode, results: Path, images_needed: int
) -> tuple[str, str, str | None]:
    """(catalog name, dataset name, fingerprint) of one split of `spec`, made and registered."""
    kind, _, rest = spec.partition(":")
    if kind == "synthetic":
        if rest and not (rest.isdigit() and int(rest) > 0):
            raise UsageError(f"--data {spec}: the image count after 'synthetic:' must be > 0")
        count = max(int(rest) if rest else SYNTHETIC_IMAGES, images_needed)
        lo, hi = cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST
        width = min(hi, round(lo * 4 / 3))  # COCO's usual 4:3 landscape at the test size
        classes = min(SYNTHETIC_CLASSES, len(SHAPE_NAMES), cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES - 1)
        synth = SyntheticSpec(
            train_images=count if split == "train" else 0,
            val_images=count if split == "val" else 0,
            width=width,
            height=lo,
            seed=SYNTHETIC_SEED,
            num_classes=classes,
        )
        images, annotations = synthetic_split(results / "cache", split, synth)
        name = f"bench_{annotations.parent.parent.name}"
        DatasetCatalog.register(name, str(images), str(annotations), replace=True)
        return name, "synthetic", _fingerprint(annotations)
    if kind == "coco":
        root = Path(rest) if rest else Path(DatasetCatalog.data_dir()) / "coco"
        images = root / f"{split}2017"
        annotations = root / "annotations" / f"instances_{split}2017.json"
        name = f"bench_coco_{split}2017"
        _register_coco(name, images, annotations, f"--data {spec}")
        return name, "coco_2017", _fingerprint(annotations)
    if kind == "txt" and rest:
        list_file, _, classes = rest.partition(":")
        list_path = Path(list_file)
        classes_path = Path(classes) if classes else list_path.parent / "classes.txt"
        for path in (list_path, classes_path):
            if not path.is_file():
                raise UsageError(f"--data {spec}: {path} not found")
        name = f"bench_txt_{list_path.stem}"
        DatasetCatalog.register_txt_list(
            name, str(list_path), str(list_path.parent), str(classes_path), replace=True
        )
        return name, f"txt:{list_path.name}", _fingerprint(list_path)
    raise UsageError(
        f"--data {spec}: expected synthetic[:N], coco[:DIR], txt:LIST[:CLASSES] or config"
    )


def prepare_data(
    spec: str, mode: str, cfg: CfgNode, results: Path, images_needed: int, evaluate: bool = False
) -> DataSetup:
    """Make (synthetic) or find the data of `spec`, register it, say how the config uses it:
    the training split for training (and the test split too when it `evaluate`s), the test
    split for inference. The record describes the split that is measured."""
    splits = (
        ["train", "val"]
        if mode == "train" and evaluate
        else ["train" if mode == "train" else "val"]
    )
    if spec == "config":
        names = cfg.DATASETS.TRAIN if mode == "train" else cfg.DATASETS.TEST
        return DataSetup([], ",".join(names), None)
    overrides, described = [], []
    for split in splits:
        name, dataset, fingerprint = _split_data(spec, split, cfg, results, images_needed)
        key = "DATASETS.TRAIN" if split == "train" else "DATASETS.TEST"
        overrides += [key, f"('{name}',)"]
        described.append((dataset, fingerprint))
    return DataSetup(overrides, *described[0])
