"""Backbones and the detector's state-dict names (maskrcnn-benchmark's)."""

import pytest
import torch

from rcnn.config import load_config
from rcnn.modeling.detector import build_detection_model

CONFIGS = "models/configs"


def _build(name: str, *overrides: str):
    return build_detection_model(load_config(f"{CONFIGS}/{name}.yaml", list(overrides)))


def _num_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def r50():
    return _build("e2e_faster_rcnn_R_50_FPN_1x")


def test_r50_fpn_state_dict_names(r50):
    keys = set(r50.state_dict())
    expected = {
        "backbone.body.stem.conv1.weight",
        "backbone.body.stem.bn1.weight",
        "backbone.body.stem.bn1.bias",
        "backbone.body.stem.bn1.running_mean",
        "backbone.body.stem.bn1.running_var",
        "backbone.body.layer1.0.conv1.weight",
        "backbone.body.layer1.0.downsample.0.weight",
        "backbone.body.layer1.0.downsample.1.running_var",
        "backbone.body.layer4.2.bn3.bias",
        *(f"backbone.fpn.fpn_inner{i}.weight" for i in range(1, 5)),
        *(f"backbone.fpn.fpn_layer{i}.bias" for i in range(1, 5)),
        *(f"rpn.anchor_generator.cell_anchors.{i}" for i in range(5)),
        "rpn.head.conv.weight",
        "rpn.head.cls_logits.weight",
        "rpn.head.bbox_pred.bias",
        "roi_heads.box.feature_extractor.fc6.weight",
        "roi_heads.box.feature_extractor.fc7.bias",
        "roi_heads.box.predictor.cls_score.weight",
        "roi_heads.box.predictor.bbox_pred.weight",
    }
    assert expected <= keys
    assert not any("num_batches_tracked" in k for k in keys)
    # Conv weights of torchvision's resnet50 (23,454,912) + FPN 3,344,384 + RPN 593,935 +
    # box head 14,310,805 (81 classes); frozen BN holds buffers only.
    assert _num_params(r50) == 41_704_036
    sd = r50.state_dict()
    assert sd["roi_heads.box.predictor.cls_score.weight"].shape == (81, 1024)
    assert sd["roi_heads.box.predictor.bbox_pred.weight"].shape == (81 * 4, 1024)
    assert sd["rpn.anchor_generator.cell_anchors.0"].tolist()[1] == [-14, -14, 17, 17]


def test_frozen_stages(r50):
    body = r50.backbone.body
    assert not any(p.requires_grad for p in body.stem.parameters())
    assert not any(p.requires_grad for p in body.layer1.parameters())
    assert all(p.requires_grad for p in body.layer2.parameters())


def test_deeper_and_resnext_bodies_build(r50):
    r101 = _build("e2e_faster_rcnn_R_101_FPN_1x")
    x101 = _build("e2e_faster_rcnn_X_101_32x8d_FPN_1x")
    n50, n101, nx101 = _num_params(r50), _num_params(r101), _num_params(x101)
    assert n101 - n50 == 17 * 1_114_112  # 17 more res4 bottlenecks (1x1, 3x3, 1x1 convs)
    assert nx101 > n101 + 40_000_000
    conv2 = x101.backbone.body.layer1[0].conv2
    assert conv2.groups == 32 and conv2.weight.shape == (256, 8, 3, 3)
    # STRIDE_IN_1X1: True for MSRA R-50 weights, False in the X-101 (FAIR weights) config.
    assert r50.backbone.body.layer2[0].conv1.stride == (2, 2)
    assert x101.backbone.body.layer2[0].conv2.stride == (2, 2)


def test_small_bodies_shapes():
    model = _build("quick/faster_rcnn_R_18_FPN_quick").eval()
    feats = model.backbone(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [
        (1, 128, 16, 24),
        (1, 128, 8, 12),
        (1, 128, 4, 6),
        (1, 128, 2, 3),
        (1, 128, 1, 2),
    ]
    r34 = _build("quick/faster_rcnn_R_18_FPN_quick", "MODEL.BACKBONE.CONV_BODY", "R-34-FPN")
    assert len(r34.backbone.body.layer3) == 6


def test_group_norm_blocks_keep_names_and_normalise():
    from rcnn.config import get_default_config

    cfg = get_default_config()
    cfg.merge_from_list(
        [
            "MODEL.BACKBONE.CONV_BODY",
            "R-18-FPN",
            "MODEL.RESNETS.TRANS_FUNC",
            "BasicBlockWithGN",
            "MODEL.RESNETS.STEM_FUNC",
            "StemWithGN",
            "MODEL.RESNETS.RES2_OUT_CHANNELS",
            "64",
        ]
    )
    from rcnn.modeling.backbone import build_backbone

    backbone = build_backbone(cfg)
    keys = backbone.state_dict().keys()
    # maskrcnn-benchmark's GN models keep the bn* names, with GN's weight/bias only
    assert "body.stem.bn1.weight" in keys and "body.stem.bn1.running_mean" not in keys
    assert isinstance(backbone.body.layer1[0].bn1, torch.nn.GroupNorm)
    assert backbone.body.layer2[0].bn1.num_groups == 32
    stem_out = backbone.body.stem.bn1(torch.randn(2, 64, 8, 8) * 50 + 7)
    assert stem_out.mean().abs() < 1e-3 and (stem_out.std() - 1).abs() < 0.05


def test_mixing_gn_and_frozen_bn_is_refused():
    from rcnn.config import get_default_config
    from rcnn.modeling.backbone import build_backbone

    cfg = get_default_config()
    cfg.merge_from_list(
        [
            "MODEL.BACKBONE.CONV_BODY",
            "R-18-FPN",
            "MODEL.RESNETS.TRANS_FUNC",
            "BasicBlockWithGN",
            "MODEL.RESNETS.RES2_OUT_CHANNELS",
            "64",
        ]
    )
    with pytest.raises(ValueError, match="use different norms"):
        build_backbone(cfg)


def _weight_muls(body, x: torch.Tensor) -> int:
    """How many aten::mul ops one forward of `body` runs (its folds: it has no other)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        body(x)
    return sum(e.count for e in prof.key_averages() if e.key == "aten::mul")


@pytest.mark.parametrize("inference_mode", [False, True])
def test_inference_folds_each_frozen_bn_once_until_the_weights_change(inference_mode):
    torch.manual_seed(0)
    body = _build("e2e_faster_rcnn_R_50_FPN_1x").backbone.body.eval()
    for m in body.modules():
        if hasattr(m, "running_var"):
            m.running_var.uniform_(0.5, 2.0)
            m.bias.normal_()
    x = torch.randn(1, 3, 64, 96)
    frozen = [p for p in body.parameters() if not p.requires_grad]
    body.requires_grad_(True)
    unfolded = [f.detach() for f in body(x)]  # gradients through every fold: nothing kept
    for p in frozen:
        p.requires_grad_(False)
    mode = torch.inference_mode() if inference_mode else torch.no_grad()
    with mode:
        assert _weight_muls(body, x) > 0
        assert _weight_muls(body, x) == 0  # the second call reuses every fold
        assert all(torch.equal(a, b) for a, b in zip(body(x), unfolded, strict=True))
        conv1 = body.layer1[0].conv1
        with torch.no_grad():
            conv1.weight.mul_(2)  # an in-place update (an optimizer step, a checkpoint load)
        assert _weight_muls(body, x) == 1  # that conv alone folds again
    # training: gradients flow through the fold of every trainable conv
    body.train()
    trainable = [m for m in body.modules() if getattr(m, "weight", None) is not None]
    trainable = [m for m in trainable if isinstance(m, torch.nn.Conv2d) and m.weight.requires_grad]
    body(x)  # scales and shifts kept under inference mode are inference tensors: made again
    assert _weight_muls(body, x) == len(trainable)  # then kept: one mul per trainable conv
    body(x)[-1].sum().backward()
    assert body.layer4[0].conv1.weight.grad is not None
    assert body.stem.conv1.weight.grad is None  # frozen
