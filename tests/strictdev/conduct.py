"""What the strict device counts of a process's conduct, and the cards it lets each process touch.

A real card punishes what a CPU forgives: host reads stall the stream, pageable copies are
synchronous, a stray context on another card costs memory on it. The device counts each of these
(`torch.strict.counters()`) and, with STRICTDEV_STRICT=1, raises when a process touches a card
that is not its own: rank r (LOCAL_RANK=r) only card r, a process without LOCAL_RANK (the
launcher's parent) none.
"""

from __future__ import annotations

import os
import weakref
from collections import Counter
from collections.abc import Callable

import torch

KEYS = ("synchronize", "d2h", "h2d", "h2d_pinned", "h2d_non_blocking", "sync_ops")
# ops a card runs only after its queue drains: their output's size depends on the data (the
# host must learn it to allocate), or they hand the host a Python value
_SIZED_BY_DATA = {
    "aten::nonzero",
    "aten::masked_select",
    "aten::_unique",
    "aten::_unique2",
    "aten::unique_dim",
    "aten::unique_consecutive",
    "aten::unique_dim_consecutive",
    "aten::bincount",  # its length is the largest value + 1
}
_VALUE_TO_HOST = {"aten::equal"}
_MASK_INDEXED = {"aten::index", "aten::index_put", "aten::index_put_", "aten::_index_put_impl_"}


def _mask(index: object) -> bool:
    return isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8)


def blocking_op(name: str, args: tuple, kwargs: dict) -> bool:
    """Whether a card blocks the host on this op: a size or a value only the data knows.

    repeat_interleave blocks without `output_size`; indexing blocks with a boolean mask (a
    nonzero inside), but for `x[mask] = scalar`, which torch runs as masked_fill."""
    if name in _SIZED_BY_DATA or name in _VALUE_TO_HOST:
        return True
    if name == "aten::repeat_interleave":
        return kwargs.get("output_size") is None
    if name in _MASK_INDEXED and len(args) > 1:
        indices = [i for i in args[1] if i is not None]
        if not any(_mask(i) for i in indices):
            return False
        value = args[2] if len(args) > 2 else None
        return not (len(indices) == 1 and isinstance(value, torch.Tensor) and value.numel() == 1)
    return False


class Conduct:
    """The counters of one process and the strict-mode check of the cards it touches."""

    def __init__(self, device: str, strict: bool) -> None:
        self.device = device
        self.strict = strict
        self.counts: Counter[str] = Counter()
        self.sync_ops: Counter[str] = Counter()  # blocking ops by aten name
        self.cards: set[int] = set()
        self.pinned: set[int] = set()  # data_ptrs of host storages pinned through pin_memory()

    def touch(self, card: int) -> None:
        """A card is used by this process (a tensor on it, a sync, set_device)."""
        if self.strict:
            rank = os.environ.get("LOCAL_RANK")
            if rank is None:
                self.violated(
                    f"{self.device}:{card} touched by the launcher's parent (no LOCAL_RANK), "
                    "which must touch no card"
                )
            elif int(rank) != card:
                self.violated(
                    f"{self.device}:{card} touched by local rank {rank}, which may touch only "
                    f"{self.device}:{rank}"
                )
        self.cards.add(card)

    def violated(self, message: str) -> None:
        """Raise, and append the message to STRICTDEV_VIOLATIONS (when set): code that catches
        every error (a precision probe) must not hide the touch from a test."""
        path = os.environ.get("STRICTDEV_VIOLATIONS")
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.write(f"pid {os.getpid()}: {message}\n")
        raise RuntimeError(message)

    def synchronized(self, card: int) -> None:
        self.touch(card)
        self.counts["synchronize"] += 1

    def device_to_host(self) -> None:
        self.counts["d2h"] += 1

    def blocked(self, name: str) -> None:
        """An op that blocks the host until the card is done (`blocking_op`)."""
        self.counts["sync_ops"] += 1
        self.sync_ops[name] += 1

    def host_to_device(self, source: torch.Tensor, non_blocking: bool) -> None:
        self.counts["h2d"] += 1
        self.counts["h2d_pinned"] += self.is_pinned(source)
        self.counts["h2d_non_blocking"] += bool(non_blocking)

    def pin(self, tensor: torch.Tensor) -> torch.Tensor:
        """A host copy of `tensor` that the device treats as page-locked."""
        copy = tensor.clone()
        ptr = copy.untyped_storage().data_ptr()
        self.pinned.add(ptr)
        weakref.finalize(copy, self.pinned.discard, ptr)
        return copy

    def is_pinned(self, tensor: torch.Tensor) -> bool:
        return tensor.device.type == "cpu" and tensor.untyped_storage().data_ptr() in self.pinned

    def counters(self) -> dict:
        return {
            **{k: self.counts[k] for k in KEYS},
            "sync_ops_by_name": dict(sorted(self.sync_ops.items())),
            "cards_touched": sorted(self.cards),
        }

    def reset(self) -> None:
        self.counts.clear()
        self.sync_ops.clear()
        self.cards.clear()


def install_pinning(conduct: Conduct) -> None:
    """pin_memory()/is_pinned() for host tensors, as a plug-in's pinned allocator gives them
    (a Python-only device cannot register one with torch)."""
    pin, is_pinned = torch.Tensor.pin_memory, torch.Tensor.is_pinned

    def pin_memory(self: torch.Tensor, device: object = None) -> torch.Tensor:
        if self.device.type != "cpu":
            return pin(self, device) if device is not None else pin(self)
        return self if conduct.is_pinned(self) else conduct.pin(self)

    def pinned(self: torch.Tensor, device: object = None) -> bool:
        if self.device.type != "cpu":
            return is_pinned(self)
        return conduct.is_pinned(self)

    torch.Tensor.pin_memory = pin_memory
    torch.Tensor.is_pinned = pinned


def install_accelerator(device: str, routed: dict[str, Callable]) -> None:
    """torch.accelerator's synchronize and memory functions for this device, as torch routes
    them to a compiled plug-in's device guard and allocator (torch >= 2.6; memory >= 2.9)."""
    acc = getattr(torch, "accelerator", None)
    if acc is None:
        return
    for name, ours in routed.items():
        original = getattr(acc, name, None)
        if original is None:
            continue  # this torch has no such function

        def call(index: object = None, _ours=ours, _original=original) -> object:
            current = acc.current_accelerator()
            if current is not None and current.type == device:
                return _ours(index)
            return _original(index)

        setattr(acc, name, call)
