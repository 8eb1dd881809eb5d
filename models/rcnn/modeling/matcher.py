"""Assign each prediction (anchor/proposal) to its best ground-truth box by IoU."""

from __future__ import annotations

import torch


class Matcher:
    """Matches columns (predictions) of an IoU matrix [G, P] to rows (ground truth).

    Result per prediction: the matched gt index, or BELOW_LOW_THRESHOLD (-1) / BETWEEN_THRESHOLDS
    (-2). With `allow_low_quality_matches`, every gt also keeps the predictions it overlaps most.
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(
        self, high_threshold: float, low_threshold: float, allow_low_quality_matches: bool = False
    ) -> None:
        if low_threshold > high_threshold:
            raise ValueError(f"low_threshold {low_threshold} > high_threshold {high_threshold}")
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: torch.Tensor) -> torch.Tensor:
        if match_quality_matrix.shape[0] == 0:
            # No ground truth: everything is background (maskrcnn-benchmark raises here).
            return match_quality_matrix.new_full(
                (match_quality_matrix.shape[1],), self.BELOW_LOW_THRESHOLD, dtype=torch.int64
            )
        matched_vals, matches = match_quality_matrix.max(dim=0)
        all_matches = matches.clone() if self.allow_low_quality_matches else None
        below_low = matched_vals < self.low_threshold
        between = (matched_vals >= self.low_threshold) & (matched_vals < self.high_threshold)
        matches[below_low] = self.BELOW_LOW_THRESHOLD
        matches[between] = self.BETWEEN_THRESHOLDS
        if all_matches is not None:
            highest_per_gt = match_quality_matrix.max(dim=1, keepdim=True).values
            # Ties count: every prediction that reaches a gt's best IoU keeps its match.
            pred_inds = (match_quality_matrix == highest_per_gt).any(dim=0)
            matches[pred_inds] = all_matches[pred_inds]
        return matches
