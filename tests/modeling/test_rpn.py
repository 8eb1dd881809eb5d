"""RPN: Detectron anchors, proposal selection (batched NMS, FPN top-n) and losses."""

import torch

from rcnn.modeling.box_coder import BoxCoder
from rcnn.modeling.rpn.anchor_generator import AnchorGenerator, generate_anchors
from rcnn.modeling.rpn.inference import RPNPostProcessor
from rcnn.modeling.utils import rank_within_groups


def test_cell_anchors_match_detectron():
    # The classic Faster R-CNN anchors: stride 16, sizes 128/256/512, ratios 0.5/1/2.
    expected = torch.tensor(
        [
            [-84, -40, 99, 55],
            [-176, -88, 191, 103],
            [-360, -184, 375, 199],
            [-56, -56, 71, 71],
            [-120, -120, 135, 135],
            [-248, -248, 263, 263],
            [-36, -80, 51, 95],
            [-80, -168, 95, 183],
            [-168, -344, 183, 359],
        ],
        dtype=torch.float32,
    )
    assert torch.equal(generate_anchors(16, (128, 256, 512), (0.5, 1.0, 2.0)), expected)
    # maskrcnn-benchmark's C4 default (sizes 32..512 on stride 16): ws = round(sqrt(512)) = 23.
    c4 = generate_anchors(16, (32, 64, 128, 256, 512), (0.5, 1.0, 2.0))
    assert c4[0].tolist() == [-15, -4, 30, 19] and c4[2].tolist() == [-84, -40, 99, 55]
    # FPN P2: stride 4, size 32 (Detectron's rounding gives 48x24, 32x32, 24x48 boxes).
    p2 = generate_anchors(4, (32,), (0.5, 1.0, 2.0))
    assert p2.tolist() == [[-22, -10, 25, 13], [-14, -14, 17, 17], [-10, -22, 13, 25]]


def test_grid_anchors_order_and_buffers():
    gen = AnchorGenerator([(32,), (64,)], (0.5, 1.0, 2.0), (4, 8), straddle_thresh=0)
    assert [k for k, _ in gen.named_buffers()] == ["cell_anchors.0", "cell_anchors.1"]
    feats = [torch.zeros(1, 1, 2, 3), torch.zeros(1, 1, 1, 2)]
    a0, a1 = gen(feats)
    assert a0.shape == (2 * 3 * 3, 4) and a1.shape == (2 * 3, 4)
    # Location-major: anchors 3..5 are the cell one step right (x + 4).
    assert torch.equal(a0[3:6], a0[0:3] + torch.tensor([4.0, 0, 4, 0]))
    assert torch.equal(a0[9:12], a0[0:3] + torch.tensor([0.0, 4, 0, 4]))
    vis = gen.visibility(torch.tensor([[0.0, 0, 9, 9], [-1.0, 0, 5, 5], [0.0, 0, 10, 5]]), (10, 10))
    assert vis.tolist() == [True, False, False]


def test_rank_within_groups():
    groups = torch.tensor([2, 0, 2, 1, 0, 2])
    assert rank_within_groups(groups).tolist() == [0, 0, 1, 0, 1, 2]


def _reference_selection(boxes, scores, nms_thresh, per_level_top):
    """The per-image, per-level loop of maskrcnn-benchmark with torchvision's nms (+1 trick)."""
    from torchvision.ops import nms

    keep = nms(torch.cat([boxes[:, :2], boxes[:, 2:] + 1], 1), scores, nms_thresh)
    return keep[:per_level_top]


def test_post_processor_equals_per_image_per_level_loop():
    torch.manual_seed(0)
    gen = AnchorGenerator([(16,), (32,)], (0.5, 1.0, 2.0), (4, 8))
    feats = [torch.zeros(2, 1, 8, 10), torch.zeros(2, 1, 4, 5)]
    anchors = gen(feats)
    objectness = [torch.randn(2, 3, 8, 10), torch.randn(2, 3, 4, 5)]
    deltas = [torch.randn(2, 12, 8, 10) * 0.3, torch.randn(2, 12, 4, 5) * 0.3]
    sizes = [(32, 40), (30, 36)]
    coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
    post = RPNPostProcessor(50, 20, 0.7, 0, coder, fpn_post_nms_top_n=30)
    out = post(anchors, objectness, deltas, sizes)
    for i, (h, w) in enumerate(sizes):
        all_boxes, all_scores = [], []
        for lvl in range(2):
            o = objectness[lvl][i].permute(1, 2, 0).reshape(-1).sigmoid()
            d = deltas[lvl][i].view(3, 4, *feats[lvl].shape[-2:]).permute(2, 3, 0, 1).reshape(-1, 4)
            s, idx = o.topk(50)
            b = coder.decode(d[idx], anchors[lvl][idx])
            b[:, 0::2] = b[:, 0::2].clamp(0, w - 1)
            b[:, 1::2] = b[:, 1::2].clamp(0, h - 1)
            keep = _reference_selection(b, s, 0.7, 20)
            all_boxes.append(b[keep])
            all_scores.append(s[keep])
        s = torch.cat(all_scores)
        top = s.topk(min(30, len(s))).indices
        ref_boxes = torch.cat(all_boxes)[top]
        assert out[i].size == (w, h) and len(out[i]) == len(top)
        assert torch.allclose(out[i].bbox, ref_boxes, atol=1e-5)
        assert torch.allclose(out[i].get_field("objectness"), s[top])


def test_post_processor_drops_proposals_below_min_size_with_plus_one_widths():
    # One level, one anchor per cell, zero deltas: the proposals are the anchors themselves.
    anchors = [torch.tensor([[0.0, 0.0, 9.0, 9.0], [12.0, 0.0, 13.0, 5.0]])]
    objectness = [torch.tensor([0.0, 1.0]).view(1, 1, 1, 2)]
    deltas = [torch.zeros(1, 4, 1, 2)]
    coder = BoxCoder((1.0, 1.0, 1.0, 1.0))

    def kept(min_size: float) -> list[list[float]]:
        post = RPNPostProcessor(10, 10, 0.7, min_size, coder, fpn_post_nms_top_n=10)
        return sorted(post(anchors, objectness, deltas, [(20, 20)])[0].bbox.tolist())

    assert kept(3) == [[0, 0, 9, 9]]  # the 2-wide box goes
    assert kept(2) == [[0, 0, 9, 9], [12, 0, 13, 5]]  # width 13 - 12 + 1 = 2 stays
