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
