"""Batches moved to the card one ahead of the loop that consumes them.

Each batch (images, targets, ids) is put in page-locked host memory when the adapter says
pinning works, and copied with `non_blocking=True`: the copy of batch i + 1 is queued before
batch i is handed out, so the host never waits for a copy. What a timer makes of that (the
copy counts as data time) is the benchmark's timing contract, not this module's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rcnn.device import DeviceAdapter

Batch = tuple[Any, list[Any], Any]


def to_device(batch: Batch, adapter: DeviceAdapter, index: int, pin: bool) -> Batch:
    """One batch's images and targets on the card; the copy is queued, not waited for."""
    images, targets, ids = batch
    device = adapter.torch_device(index)
    if pin:
        images, targets = images.pin_memory(), [t.pin_memory() for t in targets]
    images = images.to(device, non_blocking=True)
    return images, [t.to(device, non_blocking=True) for t in targets], ids


def prefetch_to_device(batches: Iterable[Batch], adapter: DeviceAdapter, index: int) -> Iterator:
    """The batches on the card, the next one's copy queued before the current one is yielded."""
    pin = adapter.supports_pinned_memory()
    stream = iter(batches)
    ahead = next(stream, None)
    if ahead is not None:
        ahead = to_device(ahead, adapter, index, pin)
    while ahead is not None:
        current, ahead = ahead, next(stream, None)
        if ahead is not None:
            ahead = to_device(ahead, adapter, index, pin)
        yield current
