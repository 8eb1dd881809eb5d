"""IoU and concatenation with the legacy +1 convention."""

import pytest
import torch

from rcnn.structures.bounding_box import BoxList
from rcnn.structures.boxlist_ops import boxlist_iou, cat_boxlist


def test_iou_plus_one():
    a = BoxList(torch.tensor([[0.0, 0.0, 9.0, 9.0]]), (20, 20))
    b = BoxList(torch.tensor([[0.0, 0, 9, 9], [5.0, 0, 14, 9], [10.0, 0, 19, 9]]), (20, 20))
    iou = boxlist_iou(a, b)
    # 10x10 boxes overlapping on 5 columns: 50 / (100 + 100 - 50).
    assert torch.allclose(iou, torch.tensor([[1.0, 50 / 150, 0.0]]))


def test_cat():
    a = BoxList(torch.tensor([[0.0, 0.0, 9.0, 9.0]]), (20, 20))
    a.add_field("scores", torch.tensor([0.5]))
    b = BoxList(torch.tensor([[0.0, 0.0, 1.0, 5.0]]), (20, 20))
    b.add_field("scores", torch.tensor([0.75]))
    c = cat_boxlist([a, b])
    assert len(c) == 2 and c.get_field("scores").tolist() == [0.5, 0.75]
    with pytest.raises(ValueError):
        cat_boxlist([a, BoxList(torch.zeros(1, 4), (10, 10))])
