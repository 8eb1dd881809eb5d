"""torchvision detection state dict -> maskrcnn-benchmark names, BN eps folded."""

import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

from rcnn.checkpoint.torchvision_detection import (
    TORCHVISION_BN_EPS,
    convert_torchvision_detection,
)


@pytest.fixture(scope="module")
def tv_state():
    return maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()


def test_names(tv_state):
    converted = convert_torchvision_detection(tv_state)
    # 53 frozen BNs x 4 buffers + 53 convs + 8 FPN + 6 RPN + 8 box + 12 mask tensors.
    assert len(converted) == 53 * 4 + 53 + 16 + 6 + 8 + 12
    expected = {
        "backbone.body.stem.conv1.weight": "backbone.body.conv1.weight",
        "backbone.body.stem.bn1.running_mean": "backbone.body.bn1.running_mean",
        "backbone.body.layer3.5.conv2.weight": "backbone.body.layer3.5.conv2.weight",
        "backbone.body.layer1.0.downsample.1.bias": "backbone.body.layer1.0.downsample.1.bias",
        "backbone.fpn.fpn_inner1.weight": "backbone.fpn.inner_blocks.0.0.weight",
        "backbone.fpn.fpn_layer4.bias": "backbone.fpn.layer_blocks.3.0.bias",
        "rpn.head.conv.weight": "rpn.head.conv.0.0.weight",
        "rpn.head.bbox_pred.weight": "rpn.head.bbox_pred.weight",
        "roi_heads.box.feature_extractor.fc6.weight": "roi_heads.box_head.fc6.weight",
        "roi_heads.box.predictor.cls_score.bias": "roi_heads.box_predictor.cls_score.bias",
        "roi_heads.mask.feature_extractor.mask_fcn1.weight": "roi_heads.mask_head.0.0.weight",
        "roi_heads.mask.feature_extractor.mask_fcn4.bias": "roi_heads.mask_head.3.0.bias",
        "roi_heads.mask.predictor.conv5_mask.weight": "roi_heads.mask_predictor.conv5_mask.weight",
        "roi_heads.mask.predictor.mask_fcn_logits.weight": (
            "roi_heads.mask_predictor.mask_fcn_logits.weight"
        ),
    }
    for ours, theirs in expected.items():
        assert torch.equal(converted[ours], tv_state[theirs]), ours
    assert not any("num_batches_tracked" in k for k in converted)


def test_bn_eps_folded_and_legacy_names(tv_state):
    # Pre-0.13 torchvision names (no Conv2dNormActivation wrappers), with a DDP prefix.
    legacy = {
        "module.rpn.head.conv.weight": tv_state["rpn.head.conv.0.0.weight"],
        "backbone.fpn.inner_blocks.2.weight": tv_state["backbone.fpn.inner_blocks.2.0.weight"],
        "roi_heads.mask_head.mask_fcn3.bias": tv_state["roi_heads.mask_head.2.0.bias"],
        "backbone.body.bn1.running_var": torch.full((64,), 2.0),
    }
    converted = convert_torchvision_detection(legacy, target_bn_eps=0.0)
    assert set(converted) == {
        "rpn.head.conv.weight",
        "backbone.fpn.fpn_inner3.weight",
        "roi_heads.mask.feature_extractor.mask_fcn3.bias",
        "backbone.body.stem.bn1.running_var",
    }
    assert torch.allclose(
        converted["backbone.body.stem.bn1.running_var"], torch.full((64,), 2.0 + TORCHVISION_BN_EPS)
    )
    same_eps = convert_torchvision_detection(legacy, target_bn_eps=TORCHVISION_BN_EPS)
    assert torch.equal(same_eps["backbone.body.stem.bn1.running_var"], torch.full((64,), 2.0))


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match="roi_heads.keypoint_head"):
        convert_torchvision_detection({"roi_heads.keypoint_head.0.weight": torch.zeros(1)})
