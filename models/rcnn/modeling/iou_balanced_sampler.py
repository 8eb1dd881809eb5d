"""Libra R-CNN's box-head sampler (Pang et al., CVPR 2019, section 3.1): IoU-balanced negatives
and instance-balanced positives, with the batch size and positive fraction of
BalancedPositiveNegativeSampler."""

from __future__ import annotations

import torch


def _balanced_pick(groups: torch.Tensor, num: int, quota: int | None = None) -> torch.Tensor:
    """Indices of `num` entries of `groups` (non-negative group ids), drawn at random.

    quota None: round robin, each group gives its k-th entry before any gives its (k+1)-th, so
    group counts differ by at most one unless a group runs out. quota q: up to q from every
    group first, then the rest at random from whatever is left.
    """
    order = torch.randperm(groups.numel(), device=groups.device)
    shuffled = groups[order]
    by_group = torch.argsort(shuffled, stable=True)
    counts = torch.bincount(shuffled)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(by_group)
    # Rank of each entry inside its group, in the random order.
    rank[by_group] = torch.arange(groups.numel(), device=groups.device) - starts[shuffled[by_group]]
    priority = rank if quota is None else (rank >= quota).to(rank.dtype)
    # Stable sort: equal priorities keep the random order.
    return order[torch.argsort(priority, stable=True)[:num]]


class IoUBalancedSampler:
    """Per image, `batch_size_per_image` proposals with up to `positive_fraction` positives.

    Positives (label >= 1) are spread evenly over the ground-truth boxes they match. Negatives
    (label 0, max IoU below `neg_iou_thresh`) above the floor are split into `num_bins` equal IoU
    bins over [max(floor_thr, 0), neg_iou_thresh); each bin gives up to its even share of the
    `1 - floor_fraction` part of the negatives, and the rest of that part is filled at random from
    the binned ones left. The floor negatives (IoU < floor_thr; IoU 0 when floor_thr is 0; none
    when floor_thr < 0) fill the remaining quota at random, then any negative does.
    """

    def __init__(
        self,
        batch_size_per_image: int,
        positive_fraction: float,
        neg_iou_thresh: float,
        num_bins: int = 3,
        floor_thr: float = -1.0,
        floor_fraction: float = 0.0,
    ) -> None:
        if num_bins < 1:
            raise ValueError(f"num_bins must be >= 1, got {num_bins}")
        if not 0.0 <= floor_fraction <= 1.0:
            raise ValueError(f"floor_fraction must be in [0, 1], got {floor_fraction}")
        if floor_thr >= neg_iou_thresh:
            raise ValueError(f"floor_thr {floor_thr} must be below neg_iou_thresh {neg_iou_thresh}")
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.neg_iou_thresh = neg_iou_thresh
        self.num_bins = num_bins
        self.floor_thr = floor_thr
        self.floor_fraction = floor_fraction

    def __call__(
        self,
        labels: list[torch.Tensor],
        max_ious: list[torch.Tensor],
        matched_idxs: list[torch.Tensor],
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Boolean masks (positives, negatives), one pair per image, from each proposal's label
        (-1 ignored), its highest IoU with a ground-truth box and that box's index."""
        pos_masks, neg_masks = [], []
        for image_labels, ious, matched in zip(labels, max_ious, matched_idxs, strict=True):
            positive = torch.nonzero(image_labels >= 1).squeeze(1)
            negative = torch.nonzero(image_labels == 0).squeeze(1)
            num_pos = min(positive.numel(), int(self.batch_size_per_image * self.positive_fraction))
            num_neg = min(negative.numel(), self.batch_size_per_image - num_pos)
            pos_mask = torch.zeros_like(image_labels, dtype=torch.bool)
            neg_mask = torch.zeros_like(image_labels, dtype=torch.bool)
            pos_mask[positive[_balanced_pick(matched[positive], num_pos)]] = True
            neg_mask[negative[self._negatives(ious[negative], num_neg)]] = True
            pos_masks.append(pos_mask)
            neg_masks.append(neg_mask)
        return pos_masks, neg_masks

    def _negatives(self, ious: torch.Tensor, num: int) -> torch.Tensor:
        """Indices into `ious` (the negatives' max IoUs) of the `num` negatives to keep."""
        low = max(self.floor_thr, 0.0)
        in_floor = ious < self.floor_thr if self.floor_thr > 0 else ious <= self.floor_thr
        binned = torch.nonzero(~in_floor).squeeze(1)
        width = (self.neg_iou_thresh - low) / self.num_bins
        bins = ((ious[binned] - low) / width).floor().clamp_(0, self.num_bins - 1).long()
        num_binned = min(binned.numel(), int(num * (1 - self.floor_fraction)))
        quota = num_binned // self.num_bins
        picked = binned[_balanced_pick(bins, num_binned, quota)]
        if picked.numel() == num:
            return picked
        left = torch.ones_like(ious, dtype=torch.bool)
        left[picked] = False
        rest = torch.nonzero(left).squeeze(1)
        rest = rest[torch.randperm(rest.numel(), device=rest.device)]
        # The floor negatives fill the quota first, then the binned ones left over.
        rest = rest[torch.argsort((~in_floor[rest]).long(), stable=True)]
        return torch.cat([picked, rest[: num - picked.numel()]])
