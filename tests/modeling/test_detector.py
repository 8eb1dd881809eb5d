"""End to end: a tiny R-18-FPN Faster R-CNN trains on real JPEGs and runs inference."""

import math

import pytest
import torch

from rcnn.config import load_config
from rcnn.modeling.detector import build_detection_model
from rcnn.structures.bounding_box import BoxList
from rcnn.structures.image_list import to_image_list

QUICK = "models/configs/quick/faster_rcnn_R_18_FPN_quick.yaml"
LOSS_NAMES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}


def test_trains_and_infers_on_jpegs(rectangle_images):
    torch.manual_seed(0)
    model = build_detection_model(load_config(QUICK))
    images = to_image_list([img for img, _ in rectangle_images], size_divisible=32)
    targets = [t for _, t in rectangle_images]
    assert images.tensors.shape == (2, 3, 128, 160)
    # Small lr: the body is randomly initialised and its frozen BN is the identity.
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=2e-4, momentum=0.9)
    model.train()
    totals = []
    for _ in range(8):
        losses = model(images, targets)
        assert set(losses) == LOSS_NAMES
        total = sum(losses.values())
        assert math.isfinite(total.item())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(total.item())
    assert min(totals[-3:]) < totals[0]

    model.eval()
    with torch.no_grad():
        results = model(images)
    assert len(results) == 2
    for result in results:
        assert isinstance(result, BoxList) and result.size == (160, 128)
        assert set(result.fields()) == {"scores", "labels"}
        assert len(result) <= 100
        if len(result):
            assert result.get_field("labels").min() >= 1
            assert result.get_field("scores").min() > 0.05
            assert result.bbox[:, 2].max() <= 159 and result.bbox[:, 3].max() <= 127


def test_training_requires_targets(rectangle_images):
    model = build_detection_model(load_config(QUICK)).train()
    try:
        model([rectangle_images[0][0]])
    except ValueError as err:
        assert "targets" in str(err)
    else:
        raise AssertionError("training without targets must fail")


@pytest.mark.slow
@pytest.mark.parametrize(
    "config",
    [
        "e2e_faster_rcnn_R_50_FPN_1x",
        "e2e_faster_rcnn_R_101_FPN_1x",
        "e2e_faster_rcnn_X_101_32x8d_FPN_1x",
    ],
)
def test_coco_fpn_configs_train_and_infer_on_jpegs(rectangle_images, config):
    # maskrcnn-benchmark's own configs as users run them (81 classes, frozen stem + res2),
    # random weights instead of ImageNet ones: nothing may be downloaded here.
    torch.manual_seed(0)
    model = build_detection_model(load_config(f"models/configs/{config}.yaml"))
    images = to_image_list([img for img, _ in rectangle_images], size_divisible=32)
    targets = [t for _, t in rectangle_images]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=2e-4, momentum=0.9)
    model.train()
    totals = []
    for _ in range(4):
        total = sum(model(images, targets).values())
        assert math.isfinite(total.item())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(total.item())
    assert totals[-1] < totals[0], totals
    model.eval()
    with torch.no_grad():
        results = model(images)
    assert [r.size for r in results] == [(160, 128), (160, 128)]
