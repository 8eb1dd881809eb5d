"""A small synthetic COCO set (real JPEGs, real json) and quick configs for engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from rcnn.config import DatasetCatalog, load_config
from rcnn.data.synthetic import SyntheticSpec, ann_file, generate, img_dir

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "models/configs/quick/faster_rcnn_R_18_FPN_quick.yaml"


def register(root: Path, prefix: str = "synthetic") -> None:
    for split in ("train", "val"):
        DatasetCatalog.register(
            f"{prefix}_{split}", str(img_dir(root, split)), str(ann_file(root, split))
        )


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory) -> Path:
    """16 train + 4 val images of 96x128: enough for loss checks, fast to load."""
    root = tmp_path_factory.mktemp("tiny_synth")
    generate(SyntheticSpec(train_images=16, val_images=4, width=128, height=96, seed=1), root)
    register(root)
    return root


def tiny_overrides(output_dir: Path, **extra) -> list[str]:
    """The quick config shrunk to 96-pixel images and a few iterations on the CPU."""
    base = {
        "MODEL.DEVICE": "cpu",
        "OUTPUT_DIR": str(output_dir),
        "INPUT.MIN_SIZE_TRAIN": "(96,)",
        "INPUT.MAX_SIZE_TRAIN": "128",
        "INPUT.MIN_SIZE_TEST": "96",
        "INPUT.MAX_SIZE_TEST": "128",
        "SOLVER.MAX_ITER": "4",
        "SOLVER.WARMUP_ITERS": "2",
        "SOLVER.CHECKPOINT_PERIOD": "0",
        "SOLVER.IMS_PER_BATCH": "2",
        "TEST.IMS_PER_BATCH": "2",
        "INPUT.HORIZONTAL_FLIP_PROB_TRAIN": "0.0",
    }
    base.update({k: str(v) for k, v in extra.items()})
    return [tok for kv in base.items() for tok in kv]


@pytest.fixture(scope="session")
def overrides():
    """`overrides(output_dir, **KEY_VALUES)` -> the tiny quick config's override tokens.
    (A fixture, not `from conftest import`: that name is whichever conftest came first.)"""
    return tiny_overrides


@pytest.fixture
def tiny_cfg():
    """`tiny_cfg(output_dir, **KEY_VALUES)` -> the loaded tiny quick config."""
    return lambda output_dir, **extra: load_config(str(QUICK), tiny_overrides(output_dir, **extra))
