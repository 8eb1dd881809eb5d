"""Parity with torchvision's Faster R-CNN R-50-FPN: same weights (through the converter), same
pixels -> the same feature maps, RPN outputs, pooled ROI features and box head outputs."""

import pytest
import torch
from torch import nn
from torchvision.models.detection import fasterrcnn_resnet50_fpn

from rcnn.checkpoint.torchvision_detection import load_torchvision_detection
from rcnn.config import load_config
from rcnn.modeling.detector import build_detection_model
from rcnn.structures.bounding_box import BoxList

# torchvision's layout: stride in the 3x3 conv, 91 COCO classes.
OVERRIDES = ["MODEL.RESNETS.STRIDE_IN_1X1", "False", "MODEL.ROI_BOX_HEAD.NUM_CLASSES", "91"]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    tv = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval()
    with torch.no_grad():
        # Non-trivial BN statistics, so the eps folding is exercised.
        for m in tv.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.0)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
        for m in (tv.roi_heads.box_predictor.cls_score, tv.roi_heads.box_predictor.bbox_pred):
            m.bias.normal_(0, 0.1)
    ours = build_detection_model(
        load_config("models/configs/e2e_faster_rcnn_R_50_FPN_1x.yaml", OVERRIDES)
    ).eval()
    eps = float(getattr(ours.backbone.body.stem.bn1, "eps", 0.0))
    load_torchvision_detection(ours, tv.state_dict(), target_bn_eps=eps)
    return tv, ours


@pytest.fixture(scope="module")
def image(jpeg_tensor):
    objects = [(1, (20, 30, 120, 200)), (2, (150, 40, 300, 150)), (3, (60, 160, 260, 215))]
    # Both models get exactly these pixels (their own normalisation is bypassed).
    return jpeg_tensor((320, 224), objects)[None]


@pytest.fixture(scope="module")
def features(models, image):
    tv, ours = models
    with torch.no_grad():
        return list(tv.backbone(image).values()), ours.backbone(image)


def test_backbone_fpn_features(features):
    tv_feats, our_feats = features
    assert len(tv_feats) == len(our_feats) == 5
    for a, b in zip(tv_feats, our_feats, strict=True):
        assert a.shape == b.shape
        scale = a.abs().max().item()
        assert (a - b).abs().max().item() <= 1e-4 * max(scale, 1.0)


def test_rpn_head_outputs(models, features):
    tv, ours = models
    tv_feats, our_feats = features
    with torch.no_grad():
        tv_obj, tv_reg = tv.rpn.head(tv_feats)
        obj, reg = ours.rpn.head(our_feats)
    for a, b in zip(tv_obj + tv_reg, obj + reg, strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


# One box per pyramid level under both level mappers (+1 areas or not): sides 50, 150, 300, 500.
BOXES = torch.tensor(
    [
        [10.0, 10.0, 59.0, 59.0],
        [100.0, 30.0, 249.0, 179.0],
        [0.0, 0.0, 299.0, 219.0],
        [-80.0, -100.0, 419.0, 399.0],
    ]
)


def test_pooled_features_and_box_head(models, features, image):
    tv, ours = models
    tv_feats, our_feats = features
    image_size = tuple(image.shape[-2:])
    with torch.no_grad():
        tv_dict = dict(zip(["0", "1", "2", "3", "pool"], tv_feats, strict=True))
        tv_pooled = tv.roi_heads.box_roi_pool(tv_dict, [BOXES], [image_size])
        box_head = ours.roi_heads["box"]
        proposals = [BoxList(BOXES, (image_size[1], image_size[0]))]
        pooled = box_head.feature_extractor.pooler(our_feats, proposals)
        assert box_head.feature_extractor.pooler.map_levels(proposals).tolist() == [0, 1, 2, 3]
        assert torch.allclose(tv_pooled, pooled, atol=1e-4, rtol=1e-4)

        tv_logits, tv_deltas = tv.roi_heads.box_predictor(tv.roi_heads.box_head(tv_pooled))
        logits, deltas = box_head.predictor(box_head.feature_extractor(our_feats, proposals))
    assert logits.shape == (4, 91) and deltas.shape == (4, 364)
    assert torch.allclose(tv_logits, logits, atol=1e-4, rtol=1e-4)
    assert torch.allclose(tv_deltas, deltas, atol=1e-4, rtol=1e-4)
