"""IoU-balanced negatives and instance-balanced positives, counted exactly on built IoU lists."""

import pytest
import torch

from rcnn.modeling.iou_balanced_sampler import IoUBalancedSampler

# With neg_iou_thresh 0.5 and 3 bins the bins are [0, 1/6), [1/6, 1/3), [1/3, 1/2).
BIN_IOUS = (0.02, 0.25, 0.4)


def image(pos_per_gt=(), neg_per_iou=(), ignored=0):
    """labels, max IoUs, matched GT indices: positives of GT k (IoU 0.7), negatives at each
    (IoU, count), `ignored` proposals between thresholds; shuffled so order carries nothing."""
    labels, ious, matched = [], [], []
    for gt, count in enumerate(pos_per_gt):
        labels += [1 + gt % 3] * count
        ious += [0.7] * count
        matched += [gt] * count
    for iou, count in neg_per_iou:
        labels += [0] * count
        ious += [iou] * count
        matched += [-1] * count
    labels += [-1] * ignored
    ious += [0.45] * ignored
    matched += [-2] * ignored
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(7))
    return torch.tensor(labels)[order], torch.tensor(ious)[order], torch.tensor(matched)[order]


def sample(sampler, *images):
    labels, ious, matched = zip(*images, strict=True)
    return sampler(list(labels), list(ious), list(matched))


def counts(mask, values, keys):
    return [int((values[mask] == k).sum()) for k in keys]


def libra(**kwargs):
    return IoUBalancedSampler(256, 0.25, neg_iou_thresh=0.5, **kwargs)


def test_every_bin_gets_its_share():
    labels, ious, matched = image((40, 40), [(0.02, 300), (0.25, 100), (0.4, 100)])
    (pos,), (neg,) = sample(libra(), (labels, ious, matched))
    assert int(pos.sum()) == 64 and int(neg.sum()) == 192
    assert counts(neg, ious, BIN_IOUS) == [64, 64, 64]


def test_short_bins_give_all_and_the_rest_is_random():
    # Quota 64 a bin; bins 2 and 3 hold 50 and 40, so 38 more come from what is left (bin 1).
    labels, ious, matched = image((60, 10, 2), [(0.02, 300), (0.25, 50), (0.4, 40)])
    (pos,), (neg,) = sample(libra(), (labels, ious, matched))
    assert counts(neg, ious, BIN_IOUS) == [102, 50, 40]
    assert int(pos.sum()) + int(neg.sum()) == 256


def test_positives_are_spread_over_ground_truths():
    labels, ious, matched = image((40, 30, 5, 25), [(0.02, 400)])
    torch.manual_seed(0)
    (pos,), _ = sample(libra(), (labels, ious, matched))
    per_gt = counts(pos, matched, range(4))
    assert sum(per_gt) == 64
    # GT 2 gives all 5; the other 59 go 20 / 20 / 19.
    assert per_gt[2] == 5 and sorted(per_gt) == [5, 19, 20, 20]
    assert (labels[pos] >= 1).all()


def test_batch_size_and_positive_fraction():
    sampler = libra()
    # Few positives: negatives fill the batch.
    labels, ious, matched = image((6, 4), [(0.02, 300), (0.25, 300)])
    (pos,), (neg,) = sample(sampler, (labels, ious, matched))
    assert (int(pos.sum()), int(neg.sum())) == (10, 246)
    # Many positives: capped at 256 * 0.25.
    labels, ious, matched = image((100, 100), [(0.02, 300)])
    (pos,), (neg,) = sample(sampler, (labels, ious, matched))
    assert (int(pos.sum()), int(neg.sum())) == (64, 192)
    # Few of both: everything is taken, ignored proposals never.
    labels, ious, matched = image((3,), [(0.25, 5)], ignored=20)
    (pos,), (neg,) = sample(sampler, (labels, ious, matched))
    assert (int(pos.sum()), int(neg.sum())) == (3, 5)
    assert not (pos | neg)[labels == -1].any()
    assert not (pos & neg).any()


def test_floor_fraction_samples_below_the_floor_at_random():
    # Floor 0.1 with half the negatives from below it; bins [0.1, 0.5) are 0.1333 wide.
    sampler = libra(floor_thr=0.1, floor_fraction=0.5)
    labels, ious, matched = image((40, 40), [(0.05, 200), (0.15, 100), (0.3, 100), (0.45, 100)])
    _, (neg,) = sample(sampler, (labels, ious, matched))
    assert counts(neg, ious, (0.05, 0.15, 0.3, 0.45)) == [96, 32, 32, 32]
    # Too few below the floor: the binned negatives left over fill in.
    labels, ious, matched = image((40, 40), [(0.05, 10), (0.15, 100), (0.3, 100), (0.45, 100)])
    _, (neg,) = sample(sampler, (labels, ious, matched))
    assert counts(neg, ious, (0.05, 0.15, 0.3, 0.45))[0] == 10
    assert int(neg.sum()) == 192


def test_floor_zero_puts_only_zero_iou_below_the_floor():
    sampler = libra(floor_thr=0.0, floor_fraction=0.25)
    labels, ious, matched = image((40, 40), [(0.0, 300), (0.02, 300), (0.25, 100), (0.4, 100)])
    _, (neg,) = sample(sampler, (labels, ious, matched))
    # 144 binned (48 a bin: IoU 0.02 is in the first bin), 48 of IoU 0.
    assert counts(neg, ious, (0.0, 0.02, 0.25, 0.4)) == [48, 48, 48, 48]


def test_deterministic_under_a_seed_and_per_image():
    first = image((30, 20), [(0.02, 300), (0.25, 80), (0.4, 60)])
    second = image((5,), [(0.1, 50), (0.3, 200)])
    runs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        runs.append(sample(libra(), first, second))
    for a, b in zip(runs[0][0] + runs[0][1], runs[1][0] + runs[1][1], strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(runs[0][1][0], runs[2][1][0])
    assert [int(m.sum()) for m in runs[0][0] + runs[0][1]] == [50, 5, 206, 250]


def test_no_ground_truth_and_nothing_to_sample():
    labels, ious, matched = image((), [(0.0, 40)])
    (pos,), (neg,) = sample(libra(), (labels, ious, matched))
    assert (int(pos.sum()), int(neg.sum())) == (0, 40)
    empty = torch.zeros(0, dtype=torch.int64)
    (pos,), (neg,) = libra()([empty], [torch.zeros(0)], [empty])
    assert pos.shape == neg.shape == (0,)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_bins"):
        libra(num_bins=0)
    with pytest.raises(ValueError, match="floor_fraction"):
        libra(floor_fraction=1.5)
    with pytest.raises(ValueError, match="floor_thr"):
        libra(floor_thr=0.5)
