"""Pooler: FPN level mapping (canonical 224 at level 4, +1 areas) and per-level ROIAlign."""

import pytest
import torch
from torchvision.ops import roi_align

from rcnn.modeling.poolers import LevelMapper, Pooler
from rcnn.structures.bounding_box import BoxList


def test_level_mapping():
    # +1 sizes 56, 111, 112, 224, 448, 1000 -> P2, P2, P3, P4, P5, P5 (clamped).
    sides = [56, 111, 112, 224, 448, 1000]
    boxes = torch.tensor([[0.0, 0.0, s - 1, s - 1] for s in sides])
    levels = LevelMapper(2, 5)([BoxList(boxes, (1200, 1200))])
    assert levels.tolist() == [0, 0, 1, 2, 3, 3]


def test_a_box_of_nan_size_still_gets_a_level():
    """The pooler fills only the rows its levels pool (no zero fill): every box needs one."""
    boxes = torch.tensor([[0.0, 0.0, float("nan"), 10.0], [0.0, 0.0, float("inf"), 10.0]])
    levels = LevelMapper(2, 5)([BoxList(boxes, (100, 100))])
    assert levels.tolist() == [0, 3]


def test_scales_with_a_gap_are_refused():
    with pytest.raises(ValueError, match="consecutive"):
        Pooler(7, (0.25, 0.0625), 2)


def test_pooler_routes_each_box_to_its_level():
    torch.manual_seed(0)
    scales = (0.25, 0.125, 0.0625, 0.03125)
    feats = [torch.randn(2, 4, 64 // 2**i, 64 // 2**i) for i in range(4)]
    feats.append(torch.randn(2, 4, 1, 1))  # P6: present, never pooled
    b0 = BoxList(torch.tensor([[0.0, 0.0, 30.0, 30.0], [0.0, 0.0, 250.0, 250.0]]), (256, 256))
    b1 = BoxList(torch.tensor([[10.0, 10.0, 130.0, 140.0]]), (256, 256))
    pooled = Pooler(7, scales, 2)(feats, [b0, b1])
    assert pooled.shape == (3, 4, 7, 7)
    expected = [(0, 0, b0.bbox[0]), (2, 0, b0.bbox[1]), (1, 1, b1.bbox[0])]
    for row, (level, image, box) in enumerate(expected):
        rois = torch.cat([torch.tensor([float(image)]), box])[None]
        ref = roi_align(feats[level], rois, (7, 7), scales[level], 2, aligned=False)
        assert torch.allclose(pooled[row], ref[0], atol=1e-6)
