"""Feature Pyramid Network (P2..P5 from C2..C5, plus P6 by max pooling) in maskrcnn-benchmark's
naming: lateral 1x1 convs `fpn_inner1..4`, output 3x3 convs `fpn_layer1..4`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _fpn_conv(
    in_channels: int,
    out_channels: int,
    kernel: int,
    norm: Callable[[int], nn.Module] | None = None,
) -> nn.Module:
    """maskrcnn-benchmark's conv_with_kaiming_uniform: conv+bias, or conv then norm (`.0`/`.1`)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=norm is None)
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if norm is None:
        nn.init.zeros_(conv.bias)
        return conv
    return nn.Sequential(conv, norm(out_channels))


class LastLevelMaxPool(nn.Module):
    """P6 = 1x1 max pool with stride 2 of P5 (the RPN's extra, coarsest level)."""

    def forward(self, results: list[torch.Tensor]) -> list[torch.Tensor]:
        return [F.max_pool2d(results[-1], kernel_size=1, stride=2, padding=0)]


class FPN(nn.Module):
    """Top-down pathway with lateral connections; returns finest level first."""

    def __init__(
        self,
        in_channels_list: Sequence[int],
        out_channels: int,
        top_blocks: nn.Module | None = None,
        norm: Callable[[int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.inner_blocks: list[str] = []
        self.layer_blocks: list[str] = []
        for idx, in_channels in enumerate(in_channels_list, 1):
            self.add_module(f"fpn_inner{idx}", _fpn_conv(in_channels, out_channels, 1, norm))
            self.add_module(f"fpn_layer{idx}", _fpn_conv(out_channels, out_channels, 3, norm))
            self.inner_blocks.append(f"fpn_inner{idx}")
            self.layer_blocks.append(f"fpn_layer{idx}")
        self.top_blocks = top_blocks
        self.out_channels = out_channels

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        last_inner = getattr(self, self.inner_blocks[-1])(x[-1])
        results = [getattr(self, self.layer_blocks[-1])(last_inner)]
        for feature, inner_name, layer_name in zip(
            x[-2::-1], self.inner_blocks[-2::-1], self.layer_blocks[-2::-1], strict=True
        ):
            lateral = getattr(self, inner_name)(feature)
            # Upsample to the lateral's size: equals x2 nearest when sizes divide evenly.
            top_down = F.interpolate(last_inner, size=lateral.shape[-2:], mode="nearest")
            last_inner = lateral.add_(top_down)  # the lateral is fresh: no P2-sized sum
            results.insert(0, getattr(self, layer_name)(last_inner))
        if self.top_blocks is not None:
            results.extend(self.top_blocks(results))
        return results
