"""Sample a fixed-size, fixed-positive-fraction minibatch of anchors/proposals per image."""

from __future__ import annotations

import torch


class BalancedPositiveNegativeSampler:
    """Per image, pick up to `batch_size_per_image * positive_fraction` positives (label >= 1)
    and fill the rest with negatives (label == 0); labels of -1 are ignored."""

    def __init__(self, batch_size_per_image: int, positive_fraction: float) -> None:
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction

    def __call__(
        self, matched_idxs: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Boolean masks (positives, negatives), one pair per image's label tensor."""
        pos_masks, neg_masks = [], []
        for labels in matched_idxs:
            positive = torch.nonzero(labels >= 1).squeeze(1)
            negative = torch.nonzero(labels == 0).squeeze(1)
            num_pos = min(positive.numel(), int(self.batch_size_per_image * self.positive_fraction))
            num_neg = min(negative.numel(), self.batch_size_per_image - num_pos)
            perm_pos = torch.randperm(positive.numel(), device=positive.device)[:num_pos]
            perm_neg = torch.randperm(negative.numel(), device=negative.device)[:num_neg]
            pos_mask = torch.zeros_like(labels, dtype=torch.bool)
            neg_mask = torch.zeros_like(labels, dtype=torch.bool)
            pos_mask[positive[perm_pos]] = True
            neg_mask[negative[perm_neg]] = True
            pos_masks.append(pos_mask)
            neg_masks.append(neg_mask)
        return pos_masks, neg_masks
