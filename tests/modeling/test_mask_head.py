"""Mask head: layer names and shapes, the vectorised paste against a per-detection reference,
mask targets from polygons and RLE, the loss, bad input, and the quick Mask R-CNN end to end."""

import math

import pytest
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils

from rcnn.config import load_config
from rcnn.modeling.matcher import Matcher
from rcnn.modeling.poolers import Pooler
from rcnn.modeling.roi_heads.mask_head import ROIMaskHead, build_roi_mask_head
from rcnn.modeling.roi_heads.mask_head.inference import (
    Masker,
    MaskPostProcessor,
    paste_masks_in_image,
)
from rcnn.modeling.roi_heads.mask_head.loss import MaskRCNNLossComputation
from rcnn.modeling.roi_heads.mask_head.roi_mask_feature_extractors import (
    MaskRCNNFPNFeatureExtractor,
)
from rcnn.modeling.roi_heads.mask_head.roi_mask_predictors import MaskRCNNC4Predictor
from rcnn.structures.bounding_box import BoxList
from rcnn.structures.segmentation_mask import MaskError, SegmentationMask

SCALES = (0.25, 0.125, 0.0625, 0.03125)
QUICK_MASK = "models/configs/quick/mask_rcnn_R_18_FPN_quick.yaml"


def reference_paste(mask, box, height, width, padding=1):
    """maskrcnn-benchmark's paste of one [M, M] mask, written out step by step; returns the
    resized values placed in the image (-1 outside the box), before the threshold."""
    m = mask.shape[-1]
    padded = torch.zeros((m + 2 * padding, m + 2 * padding))
    padded[padding:-padding, padding:-padding] = mask.float()
    scale = (m + 2 * padding) / m
    b = box.float()[None]
    w_half = (b[:, 2] - b[:, 0]) * 0.5 * scale
    h_half = (b[:, 3] - b[:, 1]) * 0.5 * scale
    x_c = (b[:, 2] + b[:, 0]) * 0.5
    y_c = (b[:, 3] + b[:, 1]) * 0.5
    x0, y0, x1, y1 = (
        torch.stack([x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half], 1)[0]
        .to(torch.int32)
        .tolist()
    )
    w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
    resized = F.interpolate(padded[None, None], size=(h, w), mode="bilinear", align_corners=False)[
        0, 0
    ]
    image = torch.full((height, width), -1.0)
    ix0, ix1 = max(x0, 0), min(x1 + 1, width)
    iy0, iy1 = max(y0, 0), min(y1 + 1, height)
    image[iy0:iy1, ix0:ix1] = resized[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    return image


def reference_masks(masks, boxes, height, width, padding=1):
    """[N, 1, H, W] reference values of all detections, one F.interpolate per detection."""
    return torch.stack(
        [reference_paste(masks[i, 0], boxes[i], height, width, padding) for i in range(len(masks))]
    )[:, None]


def random_boxes(n, width, height, generator):
    """Boxes clipped to the image like detections: tiny, huge, on every border."""
    xy = torch.rand(n, 2, generator=generator) * torch.tensor([width, height]) * 1.1 - 4
    wh = torch.rand(n, 2, generator=generator) ** 3 * torch.tensor([width, height]) * 1.3
    boxes = torch.cat([xy, xy + wh], 1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height - 1)
    return boxes


def rectangle_polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def rectangle_rle(x0, y0, x1, y1, width, height):
    """COCO RLE (compressed) of the filled rectangle polygon."""
    return mask_utils.frPyObjects(rectangle_polygon(x0, y0, x1, y1), height, width)[0]


def test_layers_names_and_shapes():
    torch.manual_seed(0)
    extractor = MaskRCNNFPNFeatureExtractor(8, Pooler(14, SCALES, 2), (16, 16, 16, 12))
    predictor = MaskRCNNC4Predictor(extractor.out_channels, 12, num_classes=5)
    names = {k for k in extractor.state_dict()} | {k for k in predictor.state_dict()}
    assert names == {f"mask_fcn{i}.{p}" for i in range(1, 5) for p in ("weight", "bias")} | {
        f"{layer}.{p}" for layer in ("conv5_mask", "mask_fcn_logits") for p in ("weight", "bias")
    }
    feats = [torch.randn(2, 8, 64 // 2**i, 64 // 2**i) for i in range(4)]
    boxes = [
        BoxList(torch.tensor([[0.0, 0.0, 30.0, 40.0], [5.0, 5.0, 250.0, 200.0]]), (256, 256)),
        BoxList(torch.tensor([[10.0, 20.0, 90.0, 60.0]]), (256, 256)),
    ]
    x = extractor(feats, boxes)
    assert x.shape == (3, 12, 14, 14) and x.min() >= 0  # ReLU after the last conv
    assert predictor(x).shape == (3, 5, 28, 28)
    assert predictor.conv5_mask.stride == (2, 2) and predictor.mask_fcn_logits.kernel_size == (1, 1)


def assert_same_pixels(pasted, values, threshold=0.5):
    """Pixels equal the reference's, except where its value is the threshold to within float
    rounding: there the side depends on how a kernel fuses multiply-adds (torch's CPU bilinear
    kernel uses FMA on some paths), and such ties must stay rare."""
    differ = pasted != (values > threshold).to(torch.uint8)
    ties = (values - threshold).abs() < 1e-5
    assert not (differ & ~ties).any()
    assert differ.sum() <= 1e-5 * differ.numel()


@pytest.mark.parametrize("size", [(37, 23), (160, 211)])
def test_paste_matches_reference_pixel_for_pixel(size):
    width, height = size
    gen = torch.Generator().manual_seed(width)
    boxes = random_boxes(30, width, height, gen)
    boxes[:3] = torch.tensor(
        [
            [0.0, 0.0, width - 1, height - 1],
            [3.0, 3.0, 3.0, 3.0],
            [width - 1, 0.0, width - 1, height - 1],
        ]
    )
    # Mask probabilities as the head makes them, saturated ones included.
    masks = (torch.randn(30, 1, 28, 28, generator=gen) * 8).sigmoid()
    values = reference_masks(masks, boxes, height, width)
    # Small chunks force windows shifted at the image border and several widths per chunk.
    for kwargs in ({}, {"chunk_elements": 500, "max_chunk": 3}):
        pasted = paste_masks_in_image(masks, boxes, height, width, **kwargs)
        assert pasted.dtype == torch.uint8 and pasted.shape == (30, 1, height, width)
        assert_same_pixels(pasted, values)


def test_paste_of_hard_masks():
    """0/1 masks put many resized values exactly on 0.5 in exact arithmetic: the worst case."""
    gen = torch.Generator().manual_seed(7)
    width, height = 160, 211
    boxes = random_boxes(40, width, height, gen)
    masks = (torch.rand(40, 1, 28, 28, generator=gen) > 0.5).float()
    values = reference_masks(masks, boxes, height, width)
    assert_same_pixels(paste_masks_in_image(masks, boxes, height, width), values)


def test_paste_other_threshold_padding_and_no_detections():
    gen = torch.Generator().manual_seed(3)
    boxes = random_boxes(10, 50, 40, gen)
    masks = torch.rand(10, 1, 14, 14, generator=gen)
    values = reference_masks(masks, boxes, 40, 50, padding=2)
    assert_same_pixels(paste_masks_in_image(masks, boxes, 40, 50, 0.3, padding=2), values, 0.3)
    empty = paste_masks_in_image(torch.zeros(0, 1, 28, 28), torch.zeros(0, 4), 40, 50)
    assert empty.shape == (0, 1, 40, 50)


def test_post_processor_picks_the_label_channel_and_pastes():
    logits = torch.randn(3, 4, 28, 28)
    det = BoxList(
        torch.tensor([[0.0, 0.0, 20.0, 10.0], [5.0, 5.0, 40.0, 30.0], [1.0, 2.0, 3.0, 4.0]]),
        (48, 32),
    )
    det.add_field("labels", torch.tensor([2, 1, 3]))
    det.add_field("scores", torch.tensor([0.9, 0.8, 0.7]))
    empty = BoxList(torch.zeros(0, 4), (48, 32))
    empty.add_field("labels", torch.zeros(0, dtype=torch.int64))
    empty.add_field("scores", torch.zeros(0))
    probs, _ = MaskPostProcessor()(logits, [det, empty])
    expected = torch.stack([logits[0, 2], logits[1, 1], logits[2, 3]])[:, None].sigmoid()
    assert torch.equal(probs.get_field("mask"), expected)
    assert torch.equal(probs.get_field("scores"), det.get_field("scores"))
    pasted, pasted_empty = MaskPostProcessor(Masker(0.5, 1))(logits, [det, empty])
    assert torch.equal(pasted.get_field("mask"), paste_masks_in_image(expected, det.bbox, 32, 48))
    assert pasted_empty.get_field("mask").shape == (0, 1, 32, 48)


def _target(size, labels, segmentation, mode="poly"):
    """Ground truth whose boxes are the segmentations' bounding boxes."""
    width, height = size
    masks = SegmentationMask(segmentation, size, mode)
    dense = masks.get_mask_tensor()
    boxes = []
    for m in dense:
        ys, xs = torch.nonzero(m, as_tuple=True)
        boxes.append(torch.stack([xs.min(), ys.min(), xs.max(), ys.max()]))
    target = BoxList(torch.stack(boxes).float(), (width, height))
    target.add_field("labels", torch.tensor(labels))
    target.add_field("masks", masks)
    return target


def _loss(proposals, targets, logits):
    return MaskRCNNLossComputation(Matcher(0.5, 0.5), 28)(proposals, logits, targets)


@pytest.mark.parametrize("mode", ["poly", "mask"])
def test_mask_targets_are_the_gt_mask_cropped_to_the_proposal(mode):
    size = (80, 64)
    rects = [(20, 10, 60, 50), (2, 30, 30, 60)]
    segm = (
        [rectangle_polygon(*r) for r in rects]
        if mode == "poly"
        else [rectangle_rle(*r, *size) for r in rects]
    )
    target = _target(size, [2, 1], segm, mode)
    assert target.get_field("masks").mode == mode
    # Proposal 0 covers gt 0 shifted left by a quarter of its width; proposal 1 is gt 1's box.
    gt = target.bbox
    proposals = BoxList(torch.stack([gt[0] - torch.tensor([10.0, 0, 10, 0]), gt[1]]), size)
    labels, mask_targets = MaskRCNNLossComputation(Matcher(0.5, 0.5), 28).prepare_targets(
        [proposals], [target]
    )
    assert labels.tolist() == [2, 1]
    assert mask_targets.shape == (2, 28, 28)
    # The left 10/40 of proposal 0 is outside the rectangle: 7 of 28 columns.
    assert mask_targets[0, :, :6].sum() == 0 and mask_targets[0, 1:-1, 8:-1].min() == 1
    assert mask_targets[1, 1:-1, 1:-1].min() == 1

    # Loss: confident logits on the gt class channel give ~0, on another channel they do not.
    logits = torch.full((2, 3, 28, 28), -20.0)
    logits[0, 2] = mask_targets[0] * 40 - 20
    logits[1, 1] = mask_targets[1] * 40 - 20
    assert _loss([proposals], [target], logits) < 1e-6
    assert _loss([proposals], [target], logits.roll(1, dims=1)) > 1


def test_loss_matches_bce_on_the_gt_class_and_ignores_negatives():
    torch.manual_seed(0)
    size = (80, 64)
    target = _target(size, [1, 3], [rectangle_polygon(20, 10, 60, 50), [[40, 30, 79, 30, 60, 63]]])
    proposals = BoxList(torch.cat([target.bbox + 1.5, torch.tensor([[0.0, 0.0, 5.0, 5.0]])]), size)
    logits = torch.randn(3, 4, 28, 28, requires_grad=True)
    loss = _loss([proposals], [target], logits)
    mask_targets = torch.stack(
        [
            target.get_field("masks")[i].crop_and_resize(proposals.bbox[i : i + 1], 28)[0]
            for i in range(2)
        ]
    )
    expected = F.binary_cross_entropy_with_logits(
        torch.stack([logits[0, 1], logits[1, 3]]), mask_targets
    )
    assert torch.allclose(loss, expected, atol=1e-6)
    loss.backward()
    assert logits.grad[2].abs().sum() == 0 and logits.grad[0, 0].abs().sum() == 0


def test_no_positives_gives_a_connected_zero():
    size = (80, 64)
    target = _target(size, [1], [rectangle_polygon(20, 10, 60, 50)])
    empty = BoxList(torch.zeros(0, 4), size)
    head = ROIMaskHead(
        MaskRCNNFPNFeatureExtractor(4, Pooler(14, SCALES, 2), (8, 8)),
        MaskRCNNC4Predictor(8, 8, 3),
        MaskPostProcessor(),
        MaskRCNNLossComputation(Matcher(0.5, 0.5), 28),
    ).train()
    feats = [torch.randn(1, 4, 16 // 2**i, 20 // 2**i) for i in range(4)]
    background = BoxList(torch.tensor([[0.0, 0.0, 8.0, 8.0]]), size)
    background.add_field("labels", torch.tensor([0]))
    for proposals in (empty, background):
        if not proposals.has_field("labels"):
            proposals.add_field("labels", torch.zeros(0, dtype=torch.int64))
        _, handed_on, losses = head(feats, [proposals], [target])
        assert handed_on[0] is proposals
        assert losses["loss_mask"].item() == 0 and losses["loss_mask"].requires_grad
        head.zero_grad()
        losses["loss_mask"].backward()
        assert all(p.grad is not None for p in head.parameters())


def test_mask_head_trains_on_positives_only_and_pastes_in_eval():
    torch.manual_seed(0)
    size = (80, 64)
    target = _target(
        size, [1, 2], [rectangle_polygon(20, 10, 60, 50), rectangle_polygon(2, 30, 30, 60)]
    )
    proposals = BoxList(torch.cat([target.bbox + 1, torch.tensor([[50.0, 0.0, 79.0, 9.0]])]), size)
    proposals.add_field("labels", torch.tensor([1, 2, 0]))
    head = ROIMaskHead(
        MaskRCNNFPNFeatureExtractor(4, Pooler(14, SCALES, 2), (8, 8)),
        MaskRCNNC4Predictor(8, 8, 3),
        MaskPostProcessor(Masker()),
        MaskRCNNLossComputation(Matcher(0.5, 0.5), 28),
    ).train()
    feats = [torch.randn(1, 4, 16 // 2**i, 20 // 2**i) for i in range(4)]
    x, _, losses = head(feats, [proposals], [target])
    assert x.shape == (2, 8, 14, 14)
    assert set(losses) == {"loss_mask"} and math.isfinite(losses["loss_mask"].item())
    head.eval()
    detections = proposals[torch.tensor([0, 1])]
    detections.add_field("scores", torch.tensor([0.9, 0.6]))
    with torch.no_grad():
        _, results, losses = head(feats, [detections])
    assert losses == {}
    assert set(results[0].fields()) == {"labels", "scores", "mask"}
    assert results[0].get_field("mask").shape == (2, 1, 64, 80)


def test_bad_mask_targets_are_named_or_harmless():
    size = (80, 64)
    target = _target(size, [1], [rectangle_polygon(20, 10, 60, 50)])
    proposals = BoxList(target.bbox.clone(), size)
    compute = MaskRCNNLossComputation(Matcher(0.5, 0.5), 28)
    # An annotation whose polygon lies away from its box: a zero target, no crash.
    moved = BoxList(torch.tensor([[0.0, 0.0, 15.0, 15.0]]), size)
    moved.add_field("labels", torch.tensor([1]))
    moved.add_field("masks", target.get_field("masks"))
    _, mask_targets = compute.prepare_targets([BoxList(moved.bbox.clone(), size)], [moved])
    assert mask_targets.shape == (1, 28, 28) and mask_targets.sum() == 0
    # A thin polygon that a downscale leaves without area: a zero target, no crash.
    thin = _target(size, [1], [[[10, 10, 70, 10, 70, 11, 10, 11]]]).resize((8, 6))
    _, mask_targets = compute.prepare_targets([BoxList(thin.bbox.clone(), (8, 6))], [thin])
    assert mask_targets.shape == (1, 28, 28) and torch.isfinite(mask_targets).all()
    # A self-intersecting (bow-tie) polygon rasterises to its two triangles.
    bowtie = _target(size, [1], [[[10, 10, 50, 50, 50, 10, 10, 50]]])
    _, mask_targets = compute.prepare_targets([BoxList(bowtie.bbox.clone(), size)], [bowtie])
    assert 0 < mask_targets.mean() < 1
    # The data layer refuses what cannot be a mask, with the reason.
    with pytest.raises(MaskError, match="empty polygon"):
        SegmentationMask([[]], size)
    with pytest.raises(MaskError, match="zero area"):
        SegmentationMask([[[10, 10, 20, 20, 30, 30]]], size)
    with pytest.raises(MaskError, match="does not match the image"):
        SegmentationMask([rectangle_rle(1, 1, 5, 5, 40, 30)], size, "mask")
    # Targets without masks, or masks left at another image size, are named.
    no_masks = target.copy_with_fields(["labels"])
    with pytest.raises(ValueError, match="'masks' field"):
        compute.prepare_targets([proposals], [no_masks])
    stale = target.copy_with_fields(["labels"])
    stale.add_field("masks", target.get_field("masks").resize((40, 32)))
    with pytest.raises(ValueError, match="transform masks together"):
        compute.prepare_targets([proposals], [stale])


def test_build_from_config_and_unsupported_keys():
    cfg = load_config(QUICK_MASK)
    head = build_roi_mask_head(cfg, 128)
    assert head.feature_extractor.out_channels == 128
    assert head.predictor.mask_fcn_logits.out_channels == cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES
    assert head.loss_evaluator.discretization_size == 28
    assert head.feature_extractor.pooler.output_size == (14, 14)
    cfg.defrost()
    cfg.MODEL.ROI_MASK_HEAD.SHARE_BOX_FEATURE_EXTRACTOR = True
    with pytest.raises(ValueError, match="SHARE_BOX_FEATURE_EXTRACTOR"):
        build_roi_mask_head(cfg, 128)
    cfg.MODEL.ROI_MASK_HEAD.SHARE_BOX_FEATURE_EXTRACTOR = False
    cfg.MODEL.ROI_MASK_HEAD.FEATURE_EXTRACTOR = "ResNet50Conv5ROIFeatureExtractor"
    with pytest.raises(KeyError, match="MaskRCNNFPNFeatureExtractor"):
        build_roi_mask_head(cfg, 128)


def test_rle_and_polygon_targets_agree_inside():
    """The same rectangle as polygon and as RLE gives the same target away from its edge."""
    size = (80, 64)
    box = torch.tensor([[15.0, 5.0, 55.0, 45.0]])
    poly = SegmentationMask([rectangle_polygon(20, 10, 60, 50)], size)
    rle = SegmentationMask([rectangle_rle(20, 10, 60, 50, *size)], size, "mask")
    for target in (poly.crop_and_resize(box, 28)[0], rle.crop_and_resize(box, 28)[0]):
        # The rectangle starts 5/40 of the way in: 3.5 of 28 cells.
        assert target[:3].sum() == 0 and target[:, :3].sum() == 0
        assert target[4:, 4:].min() == 1


def test_quick_mask_rcnn_trains_then_returns_probabilities_or_pasted_masks(rectangle_images):
    """The quick Mask R-CNN config on two real JPEGs: one image's masks as polygons, the other's
    as RLE; 3 training iterations with a finite loss_mask; in eval, 28 x 28 probabilities, or
    full-image masks with MODEL.ROI_MASK_HEAD.POSTPROCESS_MASKS."""
    from rcnn.modeling.detector import build_detection_model
    from rcnn.structures.image_list import to_image_list

    torch.manual_seed(0)
    model = build_detection_model(load_config(QUICK_MASK))
    images = to_image_list([img for img, _ in rectangle_images], size_divisible=32)
    targets = []
    for i, (_, target) in enumerate(rectangle_images):
        rects = target.bbox.tolist()
        if i == 0:
            masks = SegmentationMask([rectangle_polygon(*r) for r in rects], target.size)
        else:
            rles = [rectangle_rle(*r, *target.size) for r in rects]
            masks = SegmentationMask(rles, target.size, "mask")
        target = target.copy_with_fields(["labels"])
        target.add_field("masks", masks)
        targets.append(target)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=2e-4, momentum=0.9)
    model.train()
    for _ in range(3):
        losses = model(images, targets)
        assert "loss_mask" in losses and math.isfinite(losses["loss_mask"].item())
        assert losses["loss_mask"].item() > 0
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    assert model.roi_heads["mask"].predictor.mask_fcn_logits.weight.grad.abs().sum() > 0

    model.eval()
    pasting = build_detection_model(
        load_config(QUICK_MASK, ["MODEL.ROI_MASK_HEAD.POSTPROCESS_MASKS", "True"])
    )
    pasting.load_state_dict(model.state_dict())
    pasting.eval()
    with torch.no_grad():
        results, pasted = model(images), pasting(images)
    for result, full in zip(results, pasted, strict=True):
        assert set(result.fields()) == {"scores", "labels", "mask"}
        prob = result.get_field("mask")
        assert prob.dtype == torch.float32 and prob.shape == (len(result), 1, 28, 28)
        assert prob.min() >= 0 and prob.max() <= 1
        mask = full.get_field("mask")
        assert mask.dtype == torch.uint8 and mask.shape == (len(result), 1, 128, 160)
        assert torch.equal(mask, paste_masks_in_image(prob, result.bbox, 128, 160))
    assert sum(len(r) for r in results) > 0
