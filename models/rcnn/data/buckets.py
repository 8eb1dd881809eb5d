"""Shape buckets: a few fixed canvases every padded batch is placed on, so a backbone compiled for
static shapes meets a known, small set of input sizes (maskrcnn-benchmark's SIZE_DIVISIBILITY,
generalised from "a multiple of 32" to "one of these sizes").

The resize (transforms.get_size) gives every image a short side of at most max(MIN_SIZE) and a
long side of at most MAX_SIZE. Each orientation gets a canvas per long side: N steps from the
smallest short side to MAX_SIZE, the short side fixed at the largest MIN_SIZE, every side a
multiple of the divisibility; one square canvas of the largest long side holds a batch that
mixes orientations (no aspect grouping). Padding is bottom/right and the image sizes stay the
real ones, so detections do not change (tests/data/test_buckets.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as F

from rcnn.structures.image_list import ImageList

# Long sides per orientation when DATALOADER.SHAPE_BUCKETS is -1 (auto) and the backbone is
# compiled for static shapes: 2 x 3 + 1 = 7 canvases, within torch's default recompile limit.
AUTO_BUCKETS = 3

Canvas = tuple[int, int]  # (height, width)


def _round_up(size: float, multiple: int) -> int:
    return int(math.ceil(size / multiple) * multiple)


def bucket_count(setting: int, static_compile: bool) -> int:
    """Long sides per orientation: DATALOADER.SHAPE_BUCKETS, where -1 (auto) is AUTO_BUCKETS
    for a backbone compiled for static shapes and 0 (off) otherwise."""
    if setting >= 0:
        return setting
    return AUTO_BUCKETS if static_compile else 0


def bucket_canvases(
    min_sizes: Sequence[int], max_size: int, size_divisible: int, count: int
) -> list[Canvas]:
    """The canvases of `count` long sides per orientation, smallest first; [] when count is 0."""
    if count <= 0:
        return []
    step = max(size_divisible, 1)
    short = _round_up(max(min_sizes), step)
    low, high = min(min_sizes), max(max_size, max(min_sizes))
    longs = sorted({_round_up(low + (high - low) * k / count, step) for k in range(1, count + 1)})
    canvases = {(short, max(long, short)) for long in longs}
    canvases |= {(w, h) for h, w in canvases}
    canvases.add((longs[-1], longs[-1]))
    return sorted(canvases, key=lambda c: (c[0] * c[1], c))


def canvas_for(height: int, width: int, canvases: Sequence[Canvas]) -> Canvas | None:
    """The smallest canvas that holds a height x width batch, None when none does."""
    fits = [c for c in canvases if c[0] >= height and c[1] >= width]
    return min(fits, key=lambda c: (c[0] * c[1], c)) if fits else None


def on_canvas(images: ImageList, canvas: Canvas) -> ImageList:
    """`images` on a `canvas`-sized tensor: zero padding bottom/right (cut there when the canvas
    is smaller, as the warm-up does with a batch larger than a bucket); sizes stay the real ones,
    clamped to the canvas."""
    height, width = canvas
    tensors = images.tensors[..., :height, :width]
    pad = (0, width - tensors.shape[-1], 0, height - tensors.shape[-2])
    tensors = F.pad(tensors, pad).contiguous()
    sizes = [(min(h, height), min(w, width)) for h, w in images.image_sizes]
    return ImageList(tensors, sizes)


def describe(canvases: Sequence[Canvas]) -> list[str]:
    """Canvases as the record writes them: "HxW"."""
    return [f"{h}x{w}" for h, w in canvases]
