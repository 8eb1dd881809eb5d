"""SegmentationMask: polygon and binary modes, legacy flips, indexing, mask targets, validation."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from rcnn.structures.bounding_box import FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM, BoxList
from rcnn.structures.segmentation_mask import MaskError, SegmentationMask, check_segmentation

SIZE = (40, 30)  # width, height
RECT = [10.0, 5.0, 30.0, 5.0, 30.0, 25.0, 10.0, 25.0]  # 20 x 20
TRI = [0.0, 0.0, 8.0, 0.0, 0.0, 8.0]
SMALL = [32.0, 2.0, 38.0, 2.0, 38.0, 6.0, 32.0, 6.0]  # 6 x 4


def _masks() -> SegmentationMask:
    # instance 1 has two polygons
    return SegmentationMask([[RECT], [TRI, SMALL], [SMALL]], SIZE)


def test_rasterise_areas_and_modes_agree() -> None:
    masks = _masks()
    dense = masks.get_mask_tensor()
    assert dense.shape == (3, 30, 40) and dense.dtype == torch.uint8
    assert dense[0].sum().item() == 400
    assert dense[2].sum().item() == 24
    assert dense[0, 5:25, 10:30].all() and dense[0].sum() == dense[0, 5:25, 10:30].sum()
    rles = [mask_utils.merge(mask_utils.frPyObjects(p, 30, 40)) for p in masks.polygons()]
    as_rle = SegmentationMask(rles, SIZE, mode="mask")
    assert torch.equal(as_rle.get_mask_tensor(), dense)
    assert torch.equal(masks.convert("mask").get_mask_tensor(), dense)


def test_transpose_legacy_convention() -> None:
    flipped = _masks().transpose(FLIP_LEFT_RIGHT)
    assert flipped.polygons()[0] == [[29.0, 5.0, 9.0, 5.0, 9.0, 25.0, 29.0, 25.0]]
    up = _masks().transpose(FLIP_TOP_BOTTOM)
    assert up.polygons()[2] == [[32.0, 27.0, 38.0, 27.0, 38.0, 23.0, 32.0, 23.0]]
    dense = _masks().convert("mask")
    assert torch.equal(dense.transpose(FLIP_LEFT_RIGHT).masks, dense.masks.flip(2))
    np.testing.assert_allclose(
        _masks().transpose(FLIP_LEFT_RIGHT).transpose(FLIP_LEFT_RIGHT).points, _masks().points
    )


def test_resize_and_crop() -> None:
    resized = _masks().resize((80, 45))
    assert resized.size == (80, 45)
    assert resized.polygons()[0][0] == [20.0, 7.5, 60.0, 7.5, 60.0, 37.5, 20.0, 37.5]
    assert resized.get_mask_tensor()[0].sum().item() == 40 * 30
    cropped = _masks().crop([10, 5, 30, 25])
    assert cropped.size == (20, 20)
    assert cropped.polygons()[0][0] == [0.0, 0.0, 20.0, 0.0, 20.0, 20.0, 0.0, 20.0]
    assert cropped.get_mask_tensor()[0].all()
    dense = _masks().convert("mask").crop([10, 5, 30, 25])
    assert dense.size == (20, 20) and dense.masks[0].all()
    assert _masks().convert("mask").resize((80, 60)).masks[0].sum().item() == 1600


def test_indexing() -> None:
    masks = _masks()
    assert len(masks) == 3
    assert masks[1].polygons() == [[TRI, SMALL]]
    assert masks[-1].polygons() == [[SMALL]]
    assert masks[1:].polygons() == [[TRI, SMALL], [SMALL]]
    picked = masks[torch.tensor([2, 0, 1])]
    assert picked.polygons() == [[SMALL], [RECT], [TRI, SMALL]]
    assert masks[torch.tensor([True, False, True])].polygons() == [[RECT], [SMALL]]
    assert len(masks[torch.tensor([], dtype=torch.int64)]) == 0
    dense = masks.convert("mask")
    assert torch.equal(dense[torch.tensor([2, 0])].masks, dense.masks[[2, 0]])
    with pytest.raises(IndexError):
        masks[3]


def test_boxlist_forwards_to_masks() -> None:
    boxes = BoxList(torch.tensor([[10.0, 5, 29, 24], [0, 0, 37, 7], [32, 2, 37, 5]]), SIZE)
    boxes.add_field("masks", _masks())
    out = boxes.resize((80, 60)).transpose(FLIP_LEFT_RIGHT)[torch.tensor([0, 2])]
    masks = out.get_field("masks")
    assert len(masks) == 2 and masks.size == (80, 60)
    assert masks.polygons()[0][0] == [59.0, 10.0, 19.0, 10.0, 19.0, 50.0, 59.0, 50.0]


@pytest.mark.parametrize("mode", ["poly", "mask"])
def test_crop_and_resize_matches_legacy_loop(mode: str) -> None:
    masks = _masks() if mode == "poly" else _masks().convert("mask")
    boxes = torch.tensor([[10.0, 5, 30, 25], [0, 0, 20, 15], [30, 0, 40, 8]])
    targets = masks.crop_and_resize(boxes, 28)
    assert targets.shape == (3, 28, 28) and targets.dtype == torch.float32
    assert targets[0].all()  # the box is exactly the rectangle
    legacy = torch.stack(
        [_masks()[i].crop(b).resize((28, 28)).get_mask_tensor()[0] for i, b in enumerate(boxes)]
    ).float()
    if mode == "poly":
        assert torch.equal(targets, legacy)
    else:  # pixel grid sampling vs polygon rasterisation: nearly the same pixels
        assert (targets != legacy).float().mean().item() < 0.05
    empty = SegmentationMask([], SIZE).crop_and_resize(torch.zeros((0, 4)), 14)
    assert empty.shape == (0, 14, 14)


def test_self_intersecting_polygon_is_accepted() -> None:
    bowtie = [0.0, 0.0, 10.0, 10.0, 10.0, 0.0, 0.0, 10.0]  # shoelace area 0, filled even-odd
    masks = SegmentationMask([[bowtie]], SIZE)
    assert masks.get_mask_tensor().sum().item() > 20


@pytest.mark.parametrize(
    ("segm", "message"),
    [
        ([], "empty polygon list"),
        ([[1.0, 2.0, 3.0, 4.0]], ">= 3 (x, y) points"),
        ([[0.0, 0.0, 5.0, 5.0, 10.0, 10.0]], "zero area"),
        ([[0.0, 0.0, float("nan"), 1.0, 2.0, 2.0]], "non-finite"),
        ({"size": [20, 40], "counts": "abc"}, "RLE size (h, w) [20, 40] does not match"),
    ],
)
def test_bad_segmentations_raise_mask_error(segm: object, message: str) -> None:
    with pytest.raises(MaskError, match=re.escape(message)):
        check_segmentation(segm, SIZE)
    with pytest.raises(MaskError):
        if isinstance(segm, dict):
            SegmentationMask([segm], SIZE, mode="mask")
        else:
            SegmentationMask([segm], SIZE)
    assert issubclass(MaskError, ValueError)


def test_binary_mask_shape_mismatch() -> None:
    with pytest.raises(MaskError, match="do not match"):
        SegmentationMask(torch.zeros((2, 10, 10)), SIZE, mode="mask")
