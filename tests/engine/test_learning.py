"""Each detector learns from scratch on synthetic shapes, on the CPU.

Recipe: 128 train / 32 val images of 128x128, 150 iterations of 4 images, lr 0.01 with 25
warm-up iterations and a x0.1 step at 120, half the iterations of the recipe before it. An
untrained model scores AP 0.000 on this val set. Each bar is its config's mean AP over seeds
less three standard deviations of the seed-to-seed spread (pooled over the three configs),
rounded down to 0.01; the APs by seed are in the README ("Test-suite measurements"), where a new
host's or a new recipe's measurements go before a bar moves.

Mask R-CNN is tested at 160 pixels, not at the images' 128, so its masks are brought back to
the original size before scoring. Where the masks are pasted (evaluator or model) is
tests/modeling/test_mask_head.py's to check, in seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rcnn.config import DatasetCatalog, load_config
from rcnn.data.synthetic import SyntheticSpec, ann_file, generate, img_dir
from rcnn.engine.run import evaluate, start_session, train

QUICK = Path(__file__).resolve().parents[2] / "models/configs/quick"

# config -> (iou type, bar on its AP)
CASES = {
    "faster_rcnn_R_18_FPN_quick": ("bbox", 0.09),
    "mask_rcnn_R_18_FPN_quick": ("segm", 0.11),
    "libra_faster_rcnn_R_18_FPN_quick": ("bbox", 0.09),
}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes128")
    generate(SyntheticSpec(train_images=128, val_images=32, width=128, height=128, seed=3), root)
    for split in ("train", "val"):
        DatasetCatalog.register(
            f"shapes128_{split}",
            str(img_dir(root, split)),
            str(ann_file(root, split)),
            replace=True,
        )
    return root


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(CASES))
def test_trains_from_scratch_to_a_useful_ap(shapes, config, tmp_path):
    iou_type, bar = CASES[config]
    test_size = "160" if config.startswith("mask") else "128"
    cfg = load_config(
        str(QUICK / f"{config}.yaml"),
        [
            "MODEL.DEVICE",
            "cpu",
            "DATASETS.TRAIN",
            "('shapes128_train',)",
            "DATASETS.TEST",
            "('shapes128_val',)",
            "OUTPUT_DIR",
            str(tmp_path),
            "INPUT.MIN_SIZE_TRAIN",
            "(128,)",
            "INPUT.MAX_SIZE_TRAIN",
            "128",
            "INPUT.MIN_SIZE_TEST",
            test_size,
            "INPUT.MAX_SIZE_TEST",
            test_size,
            "SOLVER.MAX_ITER",
            "150",
            "SOLVER.STEPS",
            "(120,)",
            "SOLVER.BASE_LR",
            "0.01",
            "SOLVER.WARMUP_ITERS",
            "25",
            "SOLVER.IMS_PER_BATCH",
            "4",
            "SOLVER.CHECKPOINT_PERIOD",
            "0",
            "TEST.IMS_PER_BATCH",
            "4",
        ],
    )
    session = start_session(cfg)
    trainer, _ = train(session, resume=False)
    scores = evaluate(session, trainer.model)
    print(config, {k: round(v["ap"], 4) for k, v in scores.items()})
    assert scores[iou_type]["ap"] >= bar, scores
