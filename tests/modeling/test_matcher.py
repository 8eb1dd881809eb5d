"""Matcher thresholds, low-quality matches; sampler counts."""

import torch

from rcnn.modeling.balanced_positive_negative_sampler import BalancedPositiveNegativeSampler
from rcnn.modeling.matcher import Matcher


def test_thresholds_and_low_quality_matches():
    iou = torch.tensor(
        [
            [0.9, 0.5, 0.1, 0.0, 0.2],
            [0.1, 0.6, 0.2, 0.35, 0.0],
        ]
    )
    plain = Matcher(0.7, 0.3, allow_low_quality_matches=False)(iou)
    assert plain.tolist() == [0, -2, -1, -2, -1]
    # gt 1's best IoU is 0.6 (prediction 1): that match is restored.
    low = Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou)
    assert low.tolist() == [0, 1, -1, -2, -1]
    assert Matcher(0.5, 0.5)(torch.zeros(0, 3)).tolist() == [-1, -1, -1]


def test_sampler_counts():
    torch.manual_seed(0)
    labels = torch.cat([torch.ones(10), torch.zeros(1000), -torch.ones(5)]).long()
    pos, neg = BalancedPositiveNegativeSampler(256, 0.25)([labels])
    assert pos[0].sum() == 10 and neg[0].sum() == 246
    assert not (pos[0] & neg[0]).any() and not (pos[0] | neg[0])[-5:].any()
    many = torch.cat([torch.full((200,), 3), torch.zeros(20)]).long()
    pos, neg = BalancedPositiveNegativeSampler(256, 0.5)([many])
    assert pos[0].sum() == 128 and neg[0].sum() == 20
