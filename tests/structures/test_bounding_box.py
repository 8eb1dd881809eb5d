"""BoxList: conversions, flips, crops, clipping and areas with the legacy +1 convention."""

import pytest
import torch

from rcnn.structures.bounding_box import FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM, BoxList


class _FakeMask:
    """A field with resize/transpose/crop that records what was done to it."""

    def __init__(self, ops=()):
        self.ops = list(ops)

    def resize(self, size):
        return _FakeMask(self.ops + [("resize", size)])

    def transpose(self, method):
        return _FakeMask(self.ops + [("transpose", method)])

    def crop(self, box):
        return _FakeMask(self.ops + [("crop", box)])

    def __getitem__(self, item):
        return self


def _boxes():
    return BoxList(torch.tensor([[0.0, 0.0, 9.0, 19.0], [5.0, 10.0, 24.0, 29.0]]), (40, 30))


def test_convert_round_trip_uses_plus_one():
    b = _boxes()
    xywh = b.convert("xywh")
    assert xywh.bbox.tolist() == [[0, 0, 10, 20], [5, 10, 20, 20]]
    assert torch.equal(xywh.convert("xyxy").bbox, b.bbox)
    assert torch.equal(b.area(), xywh.area())
    assert b.area().tolist() == [200, 400]


def test_fields_follow_indexing_and_copy():
    b = _boxes()
    b.add_field("labels", torch.tensor([3, 7]))
    b.add_field("masks", _FakeMask())
    assert b.has_field("labels") and b.fields() == ["labels", "masks"]
    sub = b[torch.tensor([False, True])]
    assert len(sub) == 1 and sub.get_field("labels").tolist() == [7]
    c = b.copy_with_fields("labels")
    assert c.fields() == ["labels"]
    with pytest.raises(KeyError):
        b.copy_with_fields(["scores"])
    assert b.copy_with_fields(["scores"], skip_missing=True).fields() == []


def test_flips_match_legacy_convention():
    b = _boxes()
    b.add_field("masks", _FakeMask())
    lr = b.transpose(FLIP_LEFT_RIGHT)
    # x' = W - x - 1 for both edges (swapped).
    assert lr.bbox.tolist() == [[30, 0, 39, 19], [15, 10, 34, 29]]
    assert lr.get_field("masks").ops == [("transpose", FLIP_LEFT_RIGHT)]
    tb = b.transpose(FLIP_TOP_BOTTOM)
    assert tb.bbox.tolist() == [[0, 11, 9, 30], [5, 1, 24, 20]]
    assert torch.equal(lr.transpose(FLIP_LEFT_RIGHT).bbox, b.bbox)


def test_resize_uniform_and_anisotropic():
    b = _boxes()
    b.add_field("masks", _FakeMask())
    r = b.resize((80, 60))
    assert torch.equal(r.bbox, b.bbox * 2) and r.size == (80, 60)
    assert r.get_field("masks").ops == [("resize", (80, 60))]
    r2 = b.convert("xywh").resize((80, 15))
    assert r2.mode == "xywh"
    assert r2.convert("xyxy").bbox.tolist() == [[0, 0, 18, 9.5], [10, 5, 48, 14.5]]


def test_crop_clip_and_remove_empty():
    b = _boxes()
    c = b.crop((6, 12, 26, 22))
    assert c.size == (20, 10)
    assert c.bbox.tolist() == [[0, 0, 3, 7], [0, 0, 18, 10]]
    clipped = BoxList(torch.tensor([[-5.0, -5.0, 50.0, 50.0], [45.0, 1.0, 60.0, 9.0]]), (40, 30))
    kept = clipped.clip_to_image(remove_empty=True)
    assert kept.bbox.tolist() == [[0, 0, 39, 29]]


def test_empty_and_bad_shapes():
    assert len(BoxList(torch.zeros(0), (10, 10))) == 0
    with pytest.raises(ValueError):
        BoxList(torch.zeros(3, 5), (10, 10))
    with pytest.raises(ValueError):
        BoxList(torch.zeros(3, 4), (10, 10), mode="cxcywh")
