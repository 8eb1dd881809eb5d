"""Libra R-CNN end to end: the configs build every part (BFP, IoU-balanced sampler, balanced L1),
the ResNeXt FPN configs build grouped bodies (also under a Libra config), and a tiny Libra
detector trains on real JPEGs and is scored by COCO evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from rcnn.config import DatasetCatalog, load_config
from rcnn.data.synthetic import SyntheticSpec, ann_file, generate, img_dir
from rcnn.engine import run
from rcnn.engine.trainer import TrainHooks
from rcnn.layers import balanced_l1_loss
from rcnn.modeling.backbone import build_backbone
from rcnn.modeling.balanced_positive_negative_sampler import BalancedPositiveNegativeSampler
from rcnn.modeling.detector import build_detection_model
from rcnn.modeling.iou_balanced_sampler import IoUBalancedSampler
from rcnn.modeling.roi_heads.box_head.box_head import build_roi_box_head
from rcnn.structures.image_list import to_image_list

CONFIGS = Path(__file__).resolve().parents[2] / "models" / "configs"
QUICK_LIBRA = CONFIGS / "quick" / "libra_faster_rcnn_R_18_FPN_quick.yaml"
LOSS_NAMES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
NON_LOCAL_KEYS = {
    f"backbone.bfp.refine.{conv}.{p}"
    for conv in ("g", "theta", "phi", "conv_out")
    for p in ("weight", "bias")
}


def test_quick_libra_config_builds_every_part():
    model = build_detection_model(load_config(str(QUICK_LIBRA)))
    state = model.state_dict()
    assert {k for k in state if k.startswith("backbone.bfp.")} == NON_LOCAL_KEYS
    assert state["backbone.bfp.refine.theta.weight"].shape == (128, 128, 1, 1)
    # maskrcnn-benchmark's names around it are unchanged (a GN FPN conv is .0, its norm .1).
    assert {"backbone.body.stem.conv1.weight", "backbone.fpn.fpn_layer4.0.weight"} <= set(state)
    loss = model.roi_heads["box"].loss_evaluator
    sampler = loss.fg_bg_sampler
    assert isinstance(sampler, IoUBalancedSampler)
    assert (
        sampler.batch_size_per_image,
        sampler.positive_fraction,
        sampler.neg_iou_thresh,
        sampler.num_bins,
        sampler.floor_thr,
        sampler.floor_fraction,
    ) == (128, 0.25, 0.5, 3, -1.0, 0.0)
    assert loss.box_loss.func is balanced_l1_loss
    assert loss.box_loss.keywords == {"beta": 1.0, "alpha": 0.5, "gamma": 1.5, "reduction": "sum"}
    # The RPN keeps the random sampler.
    assert type(model.rpn.loss_evaluator.fg_bg_sampler) is BalancedPositiveNegativeSampler


def test_plain_faster_config_has_no_libra_part():
    plain = CONFIGS / "quick" / "faster_rcnn_R_18_FPN_quick.yaml"
    model = build_detection_model(load_config(str(plain)))
    assert not any(k.startswith("backbone.bfp.") for k in model.state_dict())
    assert type(model.roi_heads["box"].loss_evaluator.fg_bg_sampler) is (
        BalancedPositiveNegativeSampler
    )


def test_bfp_must_match_the_fpn():
    cfg = load_config(str(QUICK_LIBRA), ["MODEL.BFP.IN_CHANNELS", "256"])
    with pytest.raises(ValueError, match="MODEL.BFP.IN_CHANNELS 256"):
        build_backbone(cfg)
    cfg = load_config(str(QUICK_LIBRA), ["MODEL.BFP.NUM_LEVELS", "4"])
    with pytest.raises(ValueError, match="MODEL.BFP.NUM_LEVELS 4"):
        build_backbone(cfg)


def check_resnext_body(body, groups: int) -> None:
    assert [len(getattr(body, f"layer{i}")) for i in (1, 2, 3, 4)] == [3, 4, 23, 3]
    for stage, factor in (("layer1", 1), ("layer2", 2), ("layer4", 8)):
        conv2 = getattr(body, stage)[0].conv2
        # groups x 4 channels a group, doubled every stage
        assert (conv2.groups, conv2.out_channels) == (groups, groups * 4 * factor)
    first = body.layer2[0]
    assert (first.conv1.stride, first.conv2.stride) == ((1, 1), (2, 2))  # STRIDE_IN_1X1 False


@pytest.mark.parametrize(
    "name, groups",
    [
        ("e2e_faster_rcnn_X_101_32x4d_FPN_1x.yaml", 32),
        ("e2e_faster_rcnn_X_101_64x4d_FPN_1x.yaml", 64),
    ],
)
def test_resnext_fpn_configs_build_grouped_bodies(name, groups):
    backbone = build_backbone(load_config(str(CONFIGS / name)))
    check_resnext_body(backbone.body, groups)
    assert backbone.out_channels == 256 and not hasattr(backbone, "bfp")


def test_libra_config_on_a_resnext_base(tmp_path):
    libra = tmp_path / "libra_X_101_64x4d.yaml"
    libra.write_text(
        f'_BASE_: "{CONFIGS / "e2e_faster_rcnn_X_101_64x4d_FPN_1x.yaml"}"\n'
        'MODEL:\n  BFP:\n    "ON": True\n'
        '  ROI_HEADS:\n    SAMPLER: "iou_balanced"\n'
        '  ROI_BOX_HEAD:\n    LOSS: "balanced_l1"\n'
    )
    cfg = load_config(str(libra))
    backbone = build_backbone(cfg)
    check_resnext_body(backbone.body, 64)
    assert {f"backbone.{k}" for k in backbone.state_dict() if k.startswith("bfp.")} == (
        NON_LOCAL_KEYS
    )
    box_head = build_roi_box_head(cfg, backbone.out_channels)
    assert isinstance(box_head.loss_evaluator.fg_bg_sampler, IoUBalancedSampler)
    assert box_head.loss_evaluator.fg_bg_sampler.batch_size_per_image == 512


def test_gradients_reach_the_pyramid_on_jpegs(rectangle_images):
    torch.manual_seed(0)
    model = build_detection_model(load_config(str(QUICK_LIBRA))).train()
    images = to_image_list([img for img, _ in rectangle_images], size_divisible=32)
    targets = [t for _, t in rectangle_images]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=2e-4, momentum=0.9)
    refine = model.backbone.bfp.refine
    for _ in range(2):
        losses = model(images, targets)
        assert set(losses) == LOSS_NAMES
        assert all(math.isfinite(v.item()) for v in losses.values()), losses
        optimizer.zero_grad()
        sum(losses.values()).backward()
        # The zero-initialised output conv learns from the first step.
        assert refine.conv_out.weight.grad.abs().sum() > 0
        optimizer.step()
    # Once the output conv has moved, the attention convs get gradients too.
    assert refine.theta.weight.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory) -> str:
    """8 train + 2 val real JPEGs with a COCO json, registered under a name of this module."""
    root = tmp_path_factory.mktemp("libra_synth")
    generate(SyntheticSpec(train_images=8, val_images=2, width=128, height=96, seed=3), root)
    for split in ("train", "val"):
        DatasetCatalog.register(
            f"libra_synth_{split}", str(img_dir(root, split)), str(ann_file(root, split))
        )
    return "libra_synth"


def test_engine_trains_three_iterations_and_evaluates(synthetic_set, tmp_path):
    overrides = {
        "MODEL.DEVICE": "cpu",
        "OUTPUT_DIR": str(tmp_path),
        "SEED": "1",
        "DATASETS.TRAIN": f"('{synthetic_set}_train',)",
        "DATASETS.TEST": f"('{synthetic_set}_val',)",
        "INPUT.MIN_SIZE_TRAIN": "(96,)",
        "INPUT.MAX_SIZE_TRAIN": "128",
        "INPUT.MIN_SIZE_TEST": "96",
        "INPUT.MAX_SIZE_TEST": "128",
        "SOLVER.MAX_ITER": "3",
        "SOLVER.WARMUP_ITERS": "2",
        "SOLVER.CHECKPOINT_PERIOD": "0",
        "SOLVER.BASE_LR": "0.001",
        "SOLVER.IMS_PER_BATCH": "2",
        "TEST.IMS_PER_BATCH": "2",
    }
    cfg = load_config(str(QUICK_LIBRA), [tok for kv in overrides.items() for tok in kv])
    session = run.start_session(cfg)
    steps = []
    hooks = TrainHooks(after_step=[lambda trainer, step: steps.append(step)])
    trainer, _ = run.train(session, resume=False, hooks=hooks)
    assert [s.iteration for s in steps] == [1, 2, 3]
    for step in steps:
        assert set(step.losses) >= LOSS_NAMES
        assert all(math.isfinite(v) for v in step.losses.values()), step.losses
    scores = run.evaluate(session, trainer.model)
    assert set(scores) == {"bbox"}
    assert all(math.isfinite(v) for v in scores["bbox"].values())
    assert -1.0 <= scores["bbox"]["ap"] <= 1.0  # COCO's -1 means nothing was detected
