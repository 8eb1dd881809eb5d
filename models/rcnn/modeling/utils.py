"""Small tensor helpers shared by the heads."""

from __future__ import annotations

import torch


def cat(tensors: list[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """torch.cat that skips the copy for a single tensor."""
    if len(tensors) == 1:
        return tensors[0]
    return torch.cat(tensors, dim)


def permute_and_flatten(
    layer: torch.Tensor, n: int, a: int, c: int, h: int, w: int
) -> torch.Tensor:
    """[N, A*C, H, W] -> [N, H*W*A, C]: the anchor generator's order (location-major)."""
    layer = layer.view(n, a, c, h, w).permute(0, 3, 4, 1, 2)
    return layer.reshape(n, -1, c)


def group_sizes(
    groups: torch.Tensor, num_groups: int, counted: torch.Tensor | None = None
) -> torch.Tensor:
    """How many elements (`counted` ones only, if given) each of groups 0..num_groups-1 has:
    bincount with its length known on the host (bincount's own length is the largest id + 1,
    which a card must read first)."""
    ones = torch.ones_like(groups) if counted is None else counted.long()
    sizes = torch.zeros(num_groups, dtype=torch.int64, device=groups.device)
    return sizes.index_add_(0, groups, ones)


def rank_within_groups(groups: torch.Tensor, num_groups: int | None = None) -> torch.Tensor:
    """For each element, how many earlier elements share its group (0 for the first); with
    `num_groups` (ids below it) nothing waits on the card."""
    if groups.numel() == 0:
        return groups.clone()
    order = torch.argsort(groups, stable=True)
    sorted_groups = groups[order]
    if num_groups is None:
        counts = torch.bincount(sorted_groups)
    else:
        counts = group_sizes(sorted_groups, num_groups)
    starts = torch.cumsum(counts, 0) - counts
    ranks = torch.empty_like(groups)
    ranks[order] = torch.arange(groups.numel(), device=groups.device) - starts[sorted_groups]
    return ranks
