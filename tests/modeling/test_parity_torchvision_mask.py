"""Parity of the mask branch with torchvision's Mask R-CNN (R-50-FPN, random weights).

torchvision's mask weights go through the checkpoint converter into our R-50-FPN mask head;
both branches then see the same FPN features and the same boxes. The boxes are picked away from
FPN level boundaries: torchvision's level mapper uses areas without the legacy +1, ours with it,
so a box right at a boundary may legitimately be pooled from different levels.
"""

from collections import OrderedDict

import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.models.detection.roi_heads import maskrcnn_inference

from rcnn.checkpoint.torchvision_detection import convert_torchvision_detection
from rcnn.config import load_config
from rcnn.modeling.roi_heads.mask_head import build_roi_mask_head
from rcnn.modeling.roi_heads.mask_head.inference import MaskPostProcessor
from rcnn.structures.bounding_box import BoxList

R50_MASK = "models/configs/e2e_mask_rcnn_R_50_FPN_1x.yaml"
NUM_CLASSES = 5
HEIGHT, WIDTH = 512, 640
# Square roots of areas 40..540: P2 (< 112), P3 (< 224), P4 (< 448), P5, well inside each.
BOXES = torch.tensor(
    [
        [10.3, 20.7, 50.1, 60.9],
        [100.5, 30.2, 190.8, 110.6],
        [5.0, 150.0, 160.0, 300.0],
        [40.2, 10.1, 380.7, 340.4],
        [10.0, 10.0, 600.0, 500.0],
        [300.6, 5.4, 330.2, 80.8],
    ]
)


def test_mask_branch_matches_torchvision():
    torch.manual_seed(0)
    tv = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=NUM_CLASSES).eval()
    with torch.no_grad():
        for name, param in tv.roi_heads.named_parameters():
            if name.startswith(("mask_head.", "mask_predictor.")):
                param.normal_(0, 0.05)  # biases too, so their names are checked as well

    cfg = load_config(R50_MASK)
    cfg.defrost()
    cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES = NUM_CLASSES
    head = build_roi_mask_head(cfg, 256).eval()
    converted = convert_torchvision_detection(tv.state_dict())
    prefix = "roi_heads.mask."
    head.load_state_dict(
        {k[len(prefix) :]: v for k, v in converted.items() if k.startswith(prefix)}, strict=True
    )

    feats = [torch.randn(1, 256, HEIGHT // 2**i, WIDTH // 2**i) for i in range(2, 6)]
    tv_feats = OrderedDict((str(i), f) for i, f in enumerate(feats))
    boxes = BoxList(BOXES, (WIDTH, HEIGHT))
    labels = torch.tensor([1, 4, 2, 3, 1, 2])
    boxes.add_field("labels", labels)
    with torch.no_grad():
        tv_pooled = tv.roi_heads.mask_roi_pool(tv_feats, [BOXES], [(HEIGHT, WIDTH)])
        tv_logits = tv.roi_heads.mask_predictor(tv.roi_heads.mask_head(tv_pooled))
        pooled = head.feature_extractor.pooler(feats, [boxes])
        logits = head.predictor(head.feature_extractor(feats, [boxes]))

    levels = head.feature_extractor.pooler.map_levels([boxes])
    assert torch.equal(levels, tv.roi_heads.mask_roi_pool.map_levels([BOXES]))
    assert levels.unique().tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(pooled, tv_pooled, rtol=0, atol=1e-5)
    assert logits.shape == tv_logits.shape == (6, NUM_CLASSES, 28, 28)
    # Same weights, same inputs, same conv algorithms: equal up to float32 rounding.
    assert (logits - tv_logits).abs().max() <= 1e-4 * max(1.0, tv_logits.abs().max().item())

    (tv_prob,) = maskrcnn_inference(tv_logits, [labels])
    (ours,) = MaskPostProcessor()(logits, [boxes])
    assert (ours.get_field("mask") - tv_prob).abs().max() <= 1e-5
