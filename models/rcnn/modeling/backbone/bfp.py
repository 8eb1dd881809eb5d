"""Balanced Feature Pyramid (Libra R-CNN, Pang et al., CVPR 2019, section 3.2).

The FPN levels are rescaled to the refine level's size and averaged, the average is refined
(embedded-Gaussian non-local block, a 3x3 conv, or nothing) and rescaled back to every level,
where it is added as a residual. Levels finer than the refine level are gathered with adaptive max
pooling and receive the result by nearest interpolation; coarser levels the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

REFINE_TYPES = ("non_local", "conv", "none")


class NonLocal2d(nn.Module):
    """Embedded-Gaussian non-local block (Wang et al., CVPR 2018):
    z = x + W_out(softmax(theta(x)^T phi(x)) g(x)), all four maps 1x1 convs.

    As in Libra R-CNN the embedding keeps every channel and the affinities are not scaled.
    `conv_out` starts at zero, so the block starts as the identity.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.g = nn.Conv2d(channels, channels, 1)
        self.theta = nn.Conv2d(channels, channels, 1)
        self.phi = nn.Conv2d(channels, channels, 1)
        self.conv_out = nn.Conv2d(channels, channels, 1)
        for conv in (self.g, self.theta, self.phi):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        # Zero output: the pretrained pyramid passes through unchanged until the block learns.
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        theta = self.theta(x).flatten(2)  # [n, c, hw]
        phi = self.phi(x).flatten(2)
        g = self.g(x).flatten(2)
        attention = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # [n, hw (i), hw (j)]
        y = (g @ attention.transpose(1, 2)).reshape(n, -1, h, w)  # y_i = sum_j a_ij g_j
        return x + self.conv_out(y)


def _resize(x: torch.Tensor, size: Sequence[int], shrink: bool) -> torch.Tensor:
    # Shrinking keeps each region's strongest response; growing copies it (no new detail).
    if shrink:
        return F.adaptive_max_pool2d(x, tuple(size))
    return F.interpolate(x, size=tuple(size), mode="nearest")


class BalancedFeaturePyramid(nn.Module):
    """Takes and returns `num_levels` maps (finest first) of `in_channels` channels; each output
    has its input's shape. `refine_level` indexes the level (0 = finest) the pyramid is balanced
    at; `refine_type` is one of "non_local", "conv" (3x3 conv + ReLU), "none"."""

    def __init__(
        self,
        in_channels: int,
        num_levels: int = 5,
        refine_level: int = 2,
        refine_type: str = "non_local",
    ) -> None:
        super().__init__()
        if not 0 <= refine_level < num_levels:
            raise ValueError(f"refine_level {refine_level} must be in [0, {num_levels})")
        if refine_type not in REFINE_TYPES:
            raise ValueError(f"refine_type {refine_type!r} is not one of {REFINE_TYPES}")
        self.num_levels = num_levels
        self.refine_level = refine_level
        self.refine: nn.Module = nn.Identity()
        if refine_type == "non_local":
            self.refine = NonLocal2d(in_channels)
        elif refine_type == "conv":
            conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)
            self.refine = nn.Sequential(conv, nn.ReLU(inplace=True))

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != self.num_levels:
            raise ValueError(
                f"BalancedFeaturePyramid built for {self.num_levels} levels got {len(features)}"
            )
        size = features[self.refine_level].shape[-2:]
        gathered = [_resize(f, size, shrink=i < self.refine_level) for i, f in enumerate(features)]
        balanced = self.refine(torch.stack(gathered).mean(dim=0))
        return [
            f + _resize(balanced, f.shape[-2:], shrink=i > self.refine_level)
            for i, f in enumerate(features)
        ]


def build_balanced_feature_pyramid(
    cfg, fpn_channels: int, fpn_levels: int
) -> BalancedFeaturePyramid:
    """The pyramid of MODEL.BFP.*, checked against the FPN it follows (width, level count)."""
    bfp = cfg.MODEL.BFP
    if fpn_channels != bfp.IN_CHANNELS:
        raise ValueError(
            f"MODEL.BFP.IN_CHANNELS {bfp.IN_CHANNELS} must equal the FPN width "
            f"(MODEL.RESNETS.BACKBONE_OUT_CHANNELS {fpn_channels})"
        )
    if fpn_levels != bfp.NUM_LEVELS:
        raise ValueError(
            f"MODEL.BFP.NUM_LEVELS {bfp.NUM_LEVELS} must equal the FPN's {fpn_levels} levels"
        )
    return BalancedFeaturePyramid(
        bfp.IN_CHANNELS, bfp.NUM_LEVELS, bfp.REFINE_LEVEL, bfp.REFINE_TYPE
    )
