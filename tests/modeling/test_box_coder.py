"""BoxCoder: +1 widths, weights, round trip and the exp clip."""

import math

import torch

from rcnn.modeling.box_coder import BoxCoder


def test_encode_known_values_and_round_trip():
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    anchors = torch.tensor([[0.0, 0.0, 9.0, 19.0], [10.0, 10.0, 49.0, 29.0]])
    gt = torch.tensor([[5.0, 0.0, 14.0, 39.0], [10.0, 10.0, 49.0, 29.0]])
    deltas = coder.encode(gt, anchors)
    # Width 10 -> 10 shifted by 5 px: dx = 10 * 5 / 10; height 20 -> 40: dh = 5 * log 2.
    assert torch.allclose(deltas[0], torch.tensor([5.0, 10 * 10 / 20, 0.0, 5 * math.log(2)]))
    assert torch.allclose(deltas[1], torch.zeros(4))
    assert torch.allclose(coder.decode(deltas, anchors), gt, atol=1e-5)


def test_decode_class_specific_and_clip():
    coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
    boxes = torch.tensor([[0.0, 0.0, 15.0, 15.0]])
    codes = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0, 100.0]])
    out = coder.decode(codes, boxes)
    assert out.shape == (1, 8)
    assert torch.allclose(out[0, :4], boxes[0])
    # dw is clipped at log(1000/16): width 16 -> 1000.
    assert torch.allclose(out[0, 6] - out[0, 4] + 1, torch.tensor(1000.0), rtol=1e-5)
