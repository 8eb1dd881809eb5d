"""Box head post-processing against maskrcnn-benchmark's per-image, per-class loop."""

from __future__ import annotations

import torch

from rcnn.layers import nms
from rcnn.modeling.roi_heads.box_head.inference import PostProcessor
from rcnn.structures.bounding_box import BoxList
from rcnn.structures.boxlist_ops import legacy_nms_boxes


def per_image_loop(post: PostProcessor, logits, regression, proposals) -> list[list[tuple]]:
    """maskrcnn-benchmark's filter_results: per class threshold and NMS, then the
    detections_per_img-th best score (kthvalue) as the image's threshold, ties kept."""
    prob = torch.softmax(logits, -1)
    decoded = post.box_coder.decode(regression, torch.cat([p.bbox for p in proposals]))
    decoded = decoded.reshape(len(prob), -1, 4)
    out, start = [], 0
    for p in proposals:
        w, h = p.size
        boxes = decoded[start : start + len(p)]
        boxes = torch.stack(
            (
                boxes[..., 0].clamp(0, w - 1),
                boxes[..., 1].clamp(0, h - 1),
                boxes[..., 2].clamp(0, w - 1),
                boxes[..., 3].clamp(0, h - 1),
            ),
            -1,
        )
        scores, start = prob[start : start + len(p)], start + len(p)
        found = []
        for j in range(1, prob.shape[1]):
            idx = torch.nonzero(scores[:, j] > post.score_thresh).squeeze(1)
            keep = idx[nms(legacy_nms_boxes(boxes[idx, j]), scores[idx, j], post.nms)]
            found += [(j, float(scores[i, j]), *boxes[i, j].tolist()) for i in keep.tolist()]
        d = post.detections_per_img
        if len(found) > d > 0:
            kth = torch.tensor([f[1] for f in found]).kthvalue(len(found) - d + 1).values
            found = [f for f in found if f[1] >= kth]
        out.append(sorted(found))
    return out


def test_post_processor_equals_the_per_image_loop_with_ties_at_the_cut():
    g = torch.Generator().manual_seed(0)
    sizes = [(96, 64), (80, 80), (64, 48)]
    counts = [40, 30, 1]  # the last image keeps fewer than detections_per_img
    proposals = []
    for (w, h), n in zip(sizes, counts, strict=True):
        xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.6, h * 0.6])
        wh = 4 + torch.rand(n, 2, generator=g) * 24
        proposals.append(BoxList(torch.cat((xy, xy + wh), 1), (w, h), mode="xyxy"))
    # the first image's best six: apart (NMS keeps all), with one equal best score each
    x = torch.arange(6.0)[:, None] * 15
    proposals[0].bbox[:6] = torch.cat((x, x * 0 + 2, x + 10, x * 0 + 12), 1)
    logits = torch.randn(sum(counts), 4, generator=g) * 2
    logits[:6] = torch.tensor([0.0, 6.0, 0.0, 0.0])
    regression = torch.randn(sum(counts), 16, generator=g) * 0.1
    post = PostProcessor(score_thresh=0.05, nms=0.5, detections_per_img=5)

    results = post(logits, regression, proposals)

    reference = per_image_loop(post, logits, regression, proposals)
    lengths = [len(r) for r in reference]
    assert lengths[0] > 5 and lengths[1] == 5 and lengths[2] < 5  # the tie at the cut is kept
    for result, expected in zip(results, reference, strict=True):
        got = sorted(
            (int(label), float(score), *box.tolist())
            for label, score, box in zip(
                result.get_field("labels"), result.get_field("scores"), result.bbox, strict=True
            )
        )
        assert len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            assert a[0] == b[0]
            torch.testing.assert_close(torch.tensor(a[1:]), torch.tensor(b[1:]))
        scores = result.get_field("scores")
        assert torch.all(scores[:-1] >= scores[1:])  # in score order within the image
