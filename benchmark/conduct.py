"""Conduct: what a real card punishes and a CPU forgives, counted inside the measured window.

The harness counts, on every device, so that every train and infer record carries it:
- host reads: a tensor of the run's device read to the host (`item`, `tolist`, `cpu`, `numpy`,
  `float()`, `int()`, `bool()`, and `.to("cpu")` off a card) during an iteration's compute,
  by the model (rcnn's modeling, layers, structures) or by the harness (the rest), and every
  `synchronize` other than the timer's own boundaries. On a CPU run every tensor is the run's
  device's, so the count is what the same code would read on a card (but for `.to("cpu")`,
  which cannot be told from the run's own moves there);
- host-to-card copies (`Tensor.to` a card: the batches' and any the model makes that way) and
  how many came from pinned memory and were non-blocking;
- recompilations: graphs torch._dynamo compiled inside the window;
- the cards this process put its model and batches on.
- blocking ops: ops a card runs only once its queue drains, because their output's size
  depends on the data (`nonzero`, a boolean-mask index, `unique`, `bincount`, `repeat_interleave`
  without `output_size`) or they hand the host a value (`equal`), by the model or the harness;
- where in the model each of its reads and blocking ops was made (`model_reads_at`: the file,
  and the modeling stage that called it).
Both counts are taken where Python calls torch, so they are lower bounds (`lower_bound`): a read
or blocking op that torch makes inside C++ on its own is not seen. The strict test device counts
the same things at the operator itself (torch.strict.counters()), so CI checks these counts
against a device that cannot be fooled.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import torch

import rcnn
from rcnn.device import DeviceAdapter, on_host

# the Tensor methods that hand a value to the host: each waits for the card's queued work
READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")
# the functions (torch.X and Tensor.X) a card blocks the host on: a size or a value the data holds
BLOCKING = (
    "nonzero",
    "argwhere",
    "masked_select",
    "unique",
    "unique_consecutive",
    "bincount",
    "repeat_interleave",
    "equal",
)
# indexing with a 0-dim integer tensor reads it to the host inside C++, past __index__
# a read from code in these folders of the rcnn package is the model's, from the rest of rcnn
# or from the harness the harness's; torch's and a plug-in's own frames are looked past
RCNN_CODE = str(Path(rcnn.__file__).parent)
HARNESS_CODE = (RCNN_CODE, str(Path(__file__).parent))
MODEL_CODE = tuple(str(Path(RCNN_CODE, d)) for d in ("modeling", "layers", "structures"))


def compiled_graphs() -> int:
    """Graphs torch._dynamo has compiled in this process (0 when it was never imported)."""
    utils = sys.modules.get("torch._dynamo.utils")
    return 0 if utils is None else int(utils.counters["stats"].get("unique_graphs", 0))


def _site(frame: FrameType | None) -> str | None:
    """Where the model made a read: the first of our frames up the stack (past torch's and a
    plug-in's own code, which a device's read method may pass through), and the modeling stage
    that called it when that is another file ("layers/native/nms.py < modeling/rpn/inference.py");
    None when the first of our frames is the harness's."""
    site = None
    while frame is not None:
        path = frame.f_code.co_filename
        if path == __file__:  # this module's wrappers, another counter's too (compare)
            frame = frame.f_back
            continue
        if path.startswith(MODEL_CODE):
            name = Path(path).relative_to(RCNN_CODE).as_posix()
            if path.startswith(MODEL_CODE[0]) and site in (None, name):
                return name  # a stage's own read
            if site is None:
                site = name
            elif path.startswith(MODEL_CODE[0]):
                return f"{site} < {name}"
        elif path.startswith(HARNESS_CODE):
            return site
        frame = frame.f_back
    return site


def _is_integer(dtype: torch.dtype) -> bool:
    return not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool


def _scalar_index(index: object) -> torch.Tensor | None:
    """The 0-dim integer tensor among an index (read to the host to index with), if any."""
    for item in index if isinstance(index, tuple) else (index,):
        if isinstance(item, torch.Tensor) and item.dim() == 0 and _is_integer(item.dtype):
            return item
    return None


def _is_mask(index: object) -> bool:
    return isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8)


def _masks(index: object) -> bool:
    """Whether an index holds a boolean mask (a nonzero inside the indexing)."""
    return any(_is_mask(i) for i in (index if isinstance(index, tuple) else (index,)))


def _blocks(name: str, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The tensor a blocking call waits on, or None when this call does not block: assigning
    without a mask or `x[mask] = scalar` (torch runs masked_fill), repeat_interleave with
    `output_size` or int repeats, torch.where with a condition and values."""
    if name == "__setitem__":
        value = args[2]
        scalar = not isinstance(value, torch.Tensor) or value.dim() == 0
        return args[0] if _masks(args[1]) and not scalar else None
    if name == "where":
        return args[0] if len(args) == 1 and not kwargs else None
    if name == "repeat_interleave":
        repeats = kwargs.get("repeats", args[1] if len(args) > 1 else args[0])
        counted = isinstance(repeats, torch.Tensor) and kwargs.get("output_size") is None
        return repeats if counted else None
    return next((a for a in args if isinstance(a, torch.Tensor)), None)


def _target(args: tuple, kwargs: dict) -> torch.device | None:
    """The device a `Tensor.to` call moves to, or None when it names none (a dtype only)."""
    target = kwargs.get("device", args[0] if args else None)
    if isinstance(target, torch.Tensor):
        return target.device
    return torch.device(target) if isinstance(target, str | torch.device) else None


@dataclass
class Counts:
    """One process's conduct over its measured window."""

    iterations: int = 0
    host_reads: int = 0
    model_host_reads: int = 0  # of host_reads, those the model's own code made
    sync_ops: int = 0  # blocking ops (BLOCKING, boolean-mask indexing) during compute
    model_sync_ops: int = 0
    model_reads_at: dict[str, int] = field(default_factory=dict)  # by _site
    model_sync_ops_at: dict[str, int] = field(default_factory=dict)
    lower_bound: bool = True  # counted where Python calls torch: C++'s own reads are not seen
    syncs: int = 0  # synchronizes besides the timer's boundaries
    h2d_copies: int = 0  # tensors moved host -> card with Tensor.to
    h2d_pinned: int = 0
    h2d_non_blocking: int = 0
    recompiles: int = 0
    cards: list[int] = field(default_factory=list)


class ConductCounter:
    """Counts conduct between `open()` and `close()`; host reads only while `active` (an
    iteration's compute: the loader's own reads are data time, not the model's)."""

    def __init__(self, adapter: DeviceAdapter, index: int) -> None:
        self.adapter, self.index = adapter, index
        self.device = adapter.torch_device(index)
        self.own_card = self.device.index or 0
        self.counts = Counts()
        self.active = False
        self._reading = False
        self._open = False
        self._graphs = 0
        self._saved: dict[str, Any] = {}
        self._saved_torch: dict[str, Any] = {}  # torch.X functions patched while open
        self._inherited: set[str] = set()  # methods torch.Tensor takes from its C base class
        self._cards: set[int] = set()
        # the timer's boundaries call this, never the counted one
        self.synchronize: Callable[[], None] = lambda sync=adapter.synchronize: sync(index)

    def _read(self, tensor: torch.Tensor, blocking: bool = False) -> None:
        if not (self.active and tensor.device.type == self.device.type):
            return
        site = _site(sys._getframe(1))
        if blocking:
            self.counts.sync_ops += 1
            at = self.counts.model_sync_ops_at
        else:
            self.counts.host_reads += 1
            at = self.counts.model_reads_at
        if site is not None:
            self.counts.model_sync_ops += blocking
            self.counts.model_host_reads += not blocking
            at[site] = at.get(site, 0) + 1

    def open(self, model: torch.nn.Module | None = None) -> None:
        """The window opens: patch the host-read methods and the adapter's synchronize."""
        if self._open:
            return
        self._open = True
        self._graphs = compiled_graphs()
        self.uses(model)
        for name in (*READS, *BLOCKING, "to", "__getitem__", "__setitem__"):
            self._saved[name] = getattr(torch.Tensor, name)
            if name not in vars(torch.Tensor):
                self._inherited.add(name)
            setattr(torch.Tensor, name, self._counted(name, self._saved[name]))
        for name in (*BLOCKING, "where"):
            self._saved_torch[name] = getattr(torch, name)
            setattr(torch, name, self._counted_blocking(name, self._saved_torch[name]))
        sync = self.adapter.synchronize

        def counted_sync(*args, **kwargs):
            self.counts.syncs += 1
            return sync(*args, **kwargs)

        self.adapter.synchronize = counted_sync  # an instance attribute, removed by close()

    def _counted(self, name: str, method: Callable) -> Callable:
        if name in (*BLOCKING, "__setitem__"):
            return self._counted_blocking(name, method)

        def read(tensor, *args, **kwargs):
            if name == "to":
                return self._moved(method, tensor, args, kwargs)
            if name == "__getitem__" and not self._reading and _masks(args[0]):
                return self._read_once(tensor, method, tensor, *args, blocking=True, **kwargs)
            # indexing reads its 0-dim index, if any; a device's own read method may read
            # again: one read, not two
            read_from = _scalar_index(args[0]) if name == "__getitem__" else tensor
            if read_from is None or self._reading:
                return method(tensor, *args, **kwargs)
            return self._read_once(read_from, method, tensor, *args, **kwargs)

        return read

    def _counted_blocking(self, name: str, function: Callable) -> Callable:
        """`function` (torch.X or Tensor.X), counted as a blocking op when this call blocks."""

        def blocking(*args, **kwargs):
            waits_on = None if self._reading else _blocks(name, args, kwargs)
            if waits_on is None:
                return function(*args, **kwargs)
            return self._read_once(waits_on, function, *args, blocking=True, **kwargs)

        return blocking

    def _read_once(
        self, read_from: torch.Tensor, method: Callable, *args, blocking: bool = False, **kwargs
    ):
        """Count one read of `read_from` (a blocking op's wait with `blocking`), then call the
        method; reads inside it are its own."""
        self._read(read_from, blocking)
        self._reading = True
        try:
            return method(*args, **kwargs)
        finally:
            self._reading = False

    def _moved(self, to: Callable, tensor: torch.Tensor, args: tuple, kwargs: dict):
        """`tensor.to(...)`: a read when a card's tensor goes to the host, a counted copy when a
        host tensor goes to a card (pinned or not, non-blocking or not)."""
        target = _target(args, kwargs)
        if target is None or self._reading or on_host(tensor.device) == on_host(target):
            return to(tensor, *args, **kwargs)
        if on_host(target):
            return self._read_once(tensor, to, tensor, *args, **kwargs)
        self._cards.add(target.index if target.index is not None else self.own_card)
        self.counts.h2d_copies += 1
        self.counts.h2d_pinned += tensor.is_pinned()
        self.counts.h2d_non_blocking += bool(kwargs.get("non_blocking", False))
        return to(tensor, *args, **kwargs)

    def uses(self, model: torch.nn.Module | None) -> None:
        """The cards `model`'s parameters are on count as touched."""
        if model is not None:
            self._cards |= {p.device.index or 0 for p in model.parameters()}

    @property
    def is_open(self) -> bool:
        return self._open

    def close(self, iterations: int) -> Counts:
        """The window closed after `iterations` measured iterations: restore, return counts."""
        if self._open:
            for name, method in self._saved.items():
                if name in self._inherited:  # leave torch.Tensor's own dict as it was
                    delattr(torch.Tensor, name)
                else:
                    setattr(torch.Tensor, name, method)
            for name, function in self._saved_torch.items():
                setattr(torch, name, function)
            vars(self.adapter).pop("synchronize", None)
            self.counts.recompiles = compiled_graphs() - self._graphs
            self._open = False
        self.active = False
        self.counts.iterations = iterations
        self.counts.cards = sorted(self._cards)
        return self.counts


@dataclass
class Budget:
    """What a window may do: host reads per iteration (and in all), pinned copies, no
    recompilation, only the process's own card."""

    reads_per_iter: float
    pinned: bool


def budget(mode: str, sync: str, log_period: int, iterations: int, pinned: bool) -> Budget:
    """Training: one host read per step with sync 'iteration' (its losses), none between log
    periods with 'window'; inference: one per batch (its results)."""
    if mode == "train" and sync == "window":
        reads = iterations // max(log_period, 1) + 1  # one per log period, and the last step
        return Budget(reads_per_iter=reads / max(iterations, 1), pinned=pinned)
    return Budget(reads_per_iter=1.0, pinned=pinned)


def harness_reads(counts: Counts) -> int:
    """Host reads and synchronizes the harness made (the model's own reads excluded)."""
    return counts.host_reads - counts.model_host_reads + counts.syncs


def broken(counts: Counts, limits: Budget, own_card: int) -> list[str]:
    """Every budget `counts` breaks, one line each."""
    reasons = []
    iterations = max(counts.iterations, 1)
    # The budget is the harness's: its results and loss reads are a measurement choice, while
    # the model's reads (one per data-dependent stage) are the detector's own, counted by site
    # and shown beside it, the same on every card.
    per_iter = harness_reads(counts) / iterations
    if per_iter > limits.reads_per_iter + 1e-9:
        model = counts.model_host_reads / iterations
        reasons.append(
            f"harness host reads {per_iter:.2f}/iteration > {limits.reads_per_iter:.2f} "
            f"(the model's own besides: {model:.2f})"
        )
    if limits.pinned and counts.h2d_pinned < counts.h2d_copies:
        reasons.append(f"{counts.h2d_copies - counts.h2d_pinned} batch copies not pinned")
    if counts.h2d_non_blocking < counts.h2d_copies:
        reasons.append(f"{counts.h2d_copies - counts.h2d_non_blocking} batch copies blocking")
    if counts.recompiles:
        reasons.append(f"{counts.recompiles} recompilations inside the window")
    if counts.cards and counts.cards != [own_card]:
        reasons.append(f"touched cards {counts.cards}, not only {own_card}")
    return reasons


def conduct_field(ranks: list[tuple[Counts, list[str]]]) -> dict[str, Any]:
    """The record's `conduct`: the worst rank's counts (budgets are per process), every rank's
    cards, and every broken budget."""
    worst = max(ranks, key=lambda r: r[0].host_reads + r[0].syncs)[0]
    out = asdict(worst)
    out.pop("cards")
    out["host_reads_per_iter"] = (worst.host_reads + worst.syncs) / max(worst.iterations, 1)
    out["cards_touched"] = [c.cards for c, _ in ranks]
    out["budget_broken"] = [f"rank {r}: {why}" for r, (_, whys) in enumerate(ranks) for why in whys]
    return out
