"""The timing contract: what a window holds, where it syncs, what data time covers.

Every measured loop (train, infer, compare, the trainer's hooks) goes through `TimedRun` below;
these rules are written here once.

1. Iterations. One iteration is the wait for its batch (data time) followed by its compute.
   Iterations are back to back: each starts where the previous one ended, so the measured step
   times add up to exactly the wall time of the measured window, and throughput agrees with the
   step times. The first `warmup` iterations are timed but left out; the very first one's time
   is kept apart as first_iter_s (compilation, autotuning), split into its data wait and its
   compute.
2. Data time covers the loader wait, pinning and the host-to-card copy: batches reach the loop
   through `prefetch_to_device` inside the timed wait, so the synchronize that ends data time
   also waits for the copy (queued one batch ahead, pinned and non-blocking where the adapter
   pins).
3. Syncs. Policy `iteration` (the default): every boundary is a device synchronize, one at the
   start and two per iteration (batch ready, compute done), so queued device work is never
   credited to the wrong side and step times are per-step latencies. Policy `window`: only the
   window's edges synchronize (the start, the end of the warm-up, the last measured iteration,
   and a step before paused work), so the host runs ahead as in production; throughput is exact,
   per-iteration times are host-side and latency is not reported.
4. Paused work. Evaluation and pasting masks run on a paused clock (`TimedRun.excluding`) after
   their step's end, which synchronizes first, so no queued device work hides in the pause.
5. Peak memory is reset when the window opens; conduct (benchmark.conduct) is counted inside it.
   A backbone compiled for static shapes is run once on every shape bucket (forward, and
   backward when training) at the first batch, on the paused clock and before the window, so
   the window compiles nothing; torch._dynamo hitting its recompile limit then, or later,
   fails the run instead of letting the backbone run eager unseen.
6. Across ranks: images summed, the slowest rank's wall time, every rank's step times pooled.
7. Three throughputs: `whole` (every iteration, warm-up included, from the first batch asked
   for to the last step, paused work included: the run as a user runs it), `train_only` (the
   window: throughput_img_s) and `compute_only` (after the window, the same step on the
   window's last batches kept on the card and cycled: no data I/O).

Percentiles interpolate linearly between order statistics (numpy's default, Hyndman-Fan type 7):
the p-th percentile of n sorted values sits at rank (n - 1) * p / 100.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from benchmark.conduct import ConductCounter, Counts, broken, budget, compiled_graphs, conduct_field
from rcnn import compat
from rcnn.config import ConfigError
from rcnn.data.buckets import Canvas, describe, on_canvas
from rcnn.device import DeviceAdapter
from rcnn.engine.inference import compute_on_dataset, predict_batch
from rcnn.engine.prefetch import Batch, prefetch_to_device
from rcnn.engine.run import EvalHook
from rcnn.engine.trainer import StepResult, Trainer, TrainHooks
from rcnn.utils import comm

T = TypeVar("T")

# rule 7: the compute-only pass cycles this many of the window's last batches, this many times
KEPT_BATCHES = 2
COMPUTE_ONLY_ITERS = 10
# What data time covers (rule 2), as each record says it.
DATA_TIME_COVERS = "loader wait + pinning + host-to-card copy (one batch ahead)"

SYNC_POLICIES = ("iteration", "window")

# A run that waits for data more than a fifth of its wall time measures its input pipeline, not
# the device; the record says so with `data_bound`.
DATA_BOUND_SHARE = 0.2

PERCENTILES = (50, 90, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolated linearly between order statistics."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo = int(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def distribution_ms(seconds: Sequence[float]) -> dict[str, float] | None:
    """{mean, p50, p90, p99} in milliseconds, or None when nothing was measured."""
    if not seconds:
        return None
    ms = [s * 1000.0 for s in seconds]
    stats = {"mean": statistics.fmean(ms)}
    stats.update({f"p{q}": percentile(ms, q) for q in PERCENTILES})
    return stats


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median and spread of repeats: min, max and the interquartile range (p75 - p25)."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "iqr": percentile(values, 75) - percentile(values, 25),
    }


@dataclass
class Window:
    """What one measured window holds: per-iteration times and the images they processed."""

    warmup_iters: int
    first_iter_s: float | None
    first_iter_data_s: float | None = None  # the first batch's wait: loader start-up included
    measured_iters: int = 0  # per rank: gathering ranks' step times does not multiply it
    images: int = 0
    wall_s: float = 0.0
    step_s: list[float] = field(default_factory=list)
    data_s: list[float] = field(default_factory=list)
    compute_s: list[float] = field(default_factory=list)
    sync: str = "iteration"


class IterationTimer:
    """Times a training or inference loop iteration by iteration; see the module docstring.

    The first `warmup` iterations are timed but left out of every statistic; the very first
    iteration's time (compilation, autotuning, caches) is kept apart as `first_iter_s`.
    """

    def __init__(
        self,
        synchronize: Callable[[], None],
        warmup: int,
        clock: Callable[[], float] = time.perf_counter,
        sync: str = "iteration",
        iters: int | None = None,
    ) -> None:
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        if sync not in SYNC_POLICIES:
            raise ValueError(f"sync must be one of {', '.join(SYNC_POLICIES)}, got {sync!r}")
        if sync == "window" and iters is None:
            raise ValueError("sync 'window' needs the measured iteration count (iters)")
        self.sync = sync
        self.iters = iters
        self._sync = synchronize
        self._clock = clock
        self.warmup = warmup
        self.iterations = 0  # warm-up included
        self._first_iter_s: float | None = None
        self._first_data_s: float | None = None
        self._iter_start: float | None = None
        self._window_start: float | None = None  # the synchronize that ends the warm-up
        self._data_end: float | None = None
        self._window = Window(warmup_iters=0, first_iter_s=None)

    def _now(self, boundary: bool = True) -> float:
        if boundary:
            self._sync()
        return self._clock()

    def _at_edge(self) -> bool:
        """Whether the iteration ending now closes the warm-up or the measured window."""
        done = self.iterations + 1
        return done == self.warmup or done == self.warmup + (self.iters or 0)

    def start(self) -> None:
        """Open the first iteration; `iterate` calls it for you."""
        self._iter_start = self._window_start = self._now()

    def data_end(self) -> None:
        """The batch is ready (on the device, if the loop moved it there): data time ends."""
        if self._iter_start is None:
            raise RuntimeError("IterationTimer.start() must be called before data_end()")
        self._data_end = self._now(self.sync == "iteration")

    def step_end(self, images: int, boundary: bool = False) -> None:
        """The iteration's compute is done: record it; the next iteration starts now.
        `boundary` synchronizes under any policy (paused work follows this step)."""
        if self._data_end is None:
            raise RuntimeError("IterationTimer.data_end() must be called before step_end()")
        end = self._now(self.sync == "iteration" or boundary or self._at_edge())
        step, data = end - self._iter_start, self._data_end - self._iter_start
        if self.iterations == 0:
            self._first_iter_s, self._first_data_s = step, data
        self.iterations += 1
        if self.iterations > self.warmup:
            w = self._window
            w.measured_iters += 1
            w.images += images
            w.wall_s = end - self._window_start  # equals the sum of its contiguous step times
            w.step_s.append(step)
            w.data_s.append(data)
            w.compute_s.append(end - self._data_end)
        else:
            self._window_start = end
        self._iter_start, self._data_end = end, None

    def iterate(self, batches: Iterable[T]) -> Iterator[T]:
        """Yield batches, timing the wait for each as data time; call `step_end` per batch."""
        self.start()
        for batch in batches:
            self.data_end()
            yield batch

    def window(self) -> Window:
        """This process's measured window so far."""
        w = self._window
        return Window(
            warmup_iters=min(self.iterations, self.warmup),
            first_iter_s=self._first_iter_s,
            first_iter_data_s=self._first_data_s,
            measured_iters=w.measured_iters,
            images=w.images,
            wall_s=w.wall_s,
            step_s=list(w.step_s),
            data_s=list(w.data_s),
            compute_s=list(w.compute_s),
            sync=self.sync,
        )


class PausableClock:
    """perf_counter minus the time spent paused: work wrapped by `excluding` (evaluation,
    pasting masks) does not count as a step."""

    def __init__(self, base: Callable[[], float] = time.perf_counter) -> None:
        self.paused_s = 0.0
        self._base = base  # wall time, or e.g. process_time for CPU time

    def __call__(self) -> float:
        return self._base() - self.paused_s

    def excluding(self, fn: Callable[..., T]) -> Callable[..., T]:
        def wrapped(*args, **kwargs) -> T:
            start = self._base()
            try:
                return fn(*args, **kwargs)
            finally:
                self.paused_s += self._base() - start

        return wrapped


class RepeatedTimers:
    """Repeats of one measurement over one stream of batches: repeat 0 warms up first, each
    repeat is its own window. Use `iterate` for the batches and `step_end` after each one."""

    def __init__(
        self,
        synchronize: Callable[[], None],
        warmup: int,
        iters: int | None,
        repeats: int,
        clock: Callable[[], float] | None = None,
        sync: str = "iteration",
    ) -> None:
        extra = {"clock": clock} if clock is not None else {}
        self.timers = [
            IterationTimer(synchronize, warmup if r == 0 else 0, sync=sync, iters=iters, **extra)
            for r in range(repeats)
        ]
        self.iters = iters
        self.warmup = warmup
        self._current = 0

    @property
    def total(self) -> int | None:
        """Every iteration of every repeat, warm-up included (None: as many as given)."""
        return None if self.iters is None else self.warmup + self.iters * len(self.timers)

    def iterate(self, batches: Iterable[T]) -> Iterator[T]:
        stream = iter(batches)
        for r, timer in enumerate(self.timers):
            self._current = r
            count = None if self.iters is None else self.iters + timer.warmup
            yield from timer.iterate(itertools.islice(stream, count))

    def step_end(self, images: int, boundary: bool = False) -> None:
        self.timers[self._current].step_end(images, boundary)

    @property
    def warmup_done(self) -> bool:
        """True right after the last warm-up iteration ended (the measured window opens)."""
        first = self.timers[0]
        return self._current == 0 and first.iterations == self.warmup

    def windows(self) -> list[Window]:
        return [t.window() for t in self.timers]


def reduce_across_ranks(window: Window) -> Window:
    """The global window of a multi-process run: images summed, the slowest rank's wall time,
    every rank's per-iteration times gathered. Returns `window` unchanged when
    torch.distributed is not initialised. Every rank must call it."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return window
    gathered: list[Window | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, window)
    ranks = [w for w in gathered if w is not None]
    firsts = [w for w in ranks if w.first_iter_s is not None]
    coldest = max(firsts, key=lambda w: w.first_iter_s) if firsts else window
    return Window(
        warmup_iters=window.warmup_iters,
        first_iter_s=coldest.first_iter_s,  # the cold start lasts until the last rank
        first_iter_data_s=coldest.first_iter_data_s,
        measured_iters=window.measured_iters,
        images=sum(w.images for w in ranks),
        wall_s=max(w.wall_s for w in ranks),
        step_s=[s for w in ranks for s in w.step_s],
        data_s=[s for w in ranks for s in w.data_s],
        compute_s=[s for w in ranks for s in w.compute_s],
        sync=window.sync,
    )


def summarize(windows: Window | Sequence[Window], latency: bool = False) -> dict:
    """Record fields for one window or for repeats of the same measurement.

    With repeats, throughput_img_s and data_time_share are medians over the repeats and
    `throughput_spread` gives their median, min, max and IQR; measured_iters counts every
    repeat's iterations (per rank); step-time and latency percentiles pool every repeat's
    iterations; first_iter_s is the first repeat's (only it starts cold).
    Pass `latency=True` for inference loops to fill latency_ms (per batch); a window timed
    with sync 'window' has no per-batch latency.
    """
    if isinstance(windows, Window):
        windows = [windows]
    if not windows or any(w.measured_iters == 0 or w.wall_s <= 0 for w in windows):
        raise ValueError("no measured iterations: raise the iteration count above the warm-up")
    throughputs = [w.images / w.wall_s for w in windows]
    first, first_data = windows[0].first_iter_s, windows[0].first_iter_data_s
    share = statistics.median(sum(w.data_s) / sum(w.step_s) for w in windows)
    step_s = [s for w in windows for s in w.step_s]
    # an inference batch's latency is its compute, from batch ready to results synchronized
    compute_s = [s for w in windows for s in w.compute_s]
    return {
        "warmup_iters": windows[0].warmup_iters,
        "measured_iters": sum(w.measured_iters for w in windows),
        "repeats": len(windows),
        "throughput_img_s": statistics.median(throughputs),
        "throughput_spread": spread(throughputs),
        "step_time_ms": distribution_ms(step_s),
        "latency_ms": distribution_ms(compute_s)
        if latency and windows[0].sync == "iteration"
        else None,
        "sync": windows[0].sync,
        "data_time_share": share,
        "data_bound": share > DATA_BOUND_SHARE,
        "first_iter_s": first,
        "first_iter_data_s": first_data,
        "first_iter_compute_s": None if first is None else first - (first_data or 0.0),
    }


def _warm_training(trainer: Trainer, batch: Batch, canvas: Canvas) -> None:
    """A training step's forward and backward on `batch` placed on `canvas`, without the
    update: the weights stay as they were, the backward graph is compiled."""
    images = on_canvas(batch[0], canvas)
    # a canvas smaller than the batch cuts its images: their targets are cut alike
    targets = [
        t if t.size == (w, h) else t.crop((0, 0, w, h))
        for t, (h, w) in zip(batch[1], images.image_sizes, strict=True)
    ]
    trainer.model.train()
    with trainer.adapter.autocast(trainer.precision):
        losses = trainer.model(images, targets)
    sum(losses.values()).backward()
    trainer.optimizer.zero_grad(set_to_none=True)


def throughputs(
    train_only: float, wholes: list[tuple[int, float]], compute: Window | None
) -> dict[str, float | None]:
    """Rule 7's three throughputs (FlagPerf's): the whole run's (every rank's images over the
    slowest rank's wall time), the window's (`train_only`) and compute-only, with the share of
    compute-only throughput the input pipeline costs the window."""
    wall = max(s for _, s in wholes)
    whole = sum(n for n, _ in wholes) / wall if wall > 0 else None
    compute_only = compute.images / compute.wall_s if compute and compute.wall_s > 0 else None
    return {
        "throughput_whole_img_s": whole,
        "throughput_compute_only_img_s": compute_only,
        "data_bound_share": 1 - train_only / compute_only if compute_only else None,
    }


class TimedRun:
    """The contract's one entry: a measured loop of `warmup` + `iters` x `repeats` iterations
    on card `index`, timed by the rules above. Train: `fit`; infer: `infer`; a loop of its own
    (compare): `batches` (`copy=False` for batches already on the card) and `step_end`.
    `buckets`: the loader's shape buckets (rule 5), warmed by `fit` and `infer`.
    Every rank calls `finish`; rank 0 gets the record's timing, memory and conduct fields."""

    def __init__(
        self,
        adapter: DeviceAdapter,
        index: int,
        warmup: int,
        iters: int | None,
        repeats: int = 1,
        sync: str = "iteration",
        clock: Callable[[], float] = time.perf_counter,
        mode: str = "infer",
        buckets: Sequence[Canvas] = (),
    ) -> None:
        self.adapter, self.index, self.mode = adapter, index, mode
        self.buckets = list(buckets)
        self._warm: Callable[[Any, Canvas], None] | None = None  # set by fit and infer
        self._warmup_s: float | None = None
        self._limit_hits: list[str] = []
        self.clock = PausableClock(clock)
        self.conduct = ConductCounter(adapter, index)
        self.timers = RepeatedTimers(
            self.conduct.synchronize, warmup, iters, repeats, clock=self.clock, sync=sync
        )
        self.sync = sync
        self.log_period = 1
        self._model: torch.nn.Module | None = None
        self.shapes: Counter[str] = Counter()  # padded HxW of the measured batches
        self._kept: deque = deque(maxlen=KEPT_BATCHES)  # the window's last batches, on the card
        self._whole_start: float | None = None
        self._whole = (0, 0.0)  # (images, seconds) of the whole run: rule 7
        self._compute: Window | None = None
        self._counts: Counts | None = None
        self._limit_watch = contextlib.ExitStack()
        if warmup == 0 and not self.buckets:  # else it opens once the buckets are warm
            self._open_window()

    def _open_window(self) -> None:
        self.adapter.reset_peak_memory(self.index)  # the measured window's peak, not warm-up's
        self.conduct.open(self._model)

    def batches(self, loader: Iterable[T], copy: bool = True) -> Iterator[T]:
        """The loader's batches on the card, each one's wait and copy timed as data time;
        `copy=False`: batches already on the card, data time is the sync alone."""
        if copy:
            loader = prefetch_to_device(loader, self.adapter, self.index)
        self._whole_start = time.perf_counter()
        self._limit_hits = self._limit_watch.enter_context(compat.recompile_limit_hits())
        for batch in self.timers.iterate(loader):
            if self._warmup_s is None and self._warm is not None and self.buckets:
                self.excluding(self._warm_buckets)(batch)
            self.conduct.active = True  # the iteration's compute: its host reads count
            images = getattr(batch[0], "tensors", None) if isinstance(batch, tuple) else None
            if self.conduct.is_open and images is not None:
                self.shapes["x".join(map(str, images.shape[-2:]))] += 1
            if self.conduct.is_open:
                self._kept.append(batch)
            yield batch

    def _warm_buckets(self, batch: Any) -> None:
        """Rule 5: every bucket compiled on `batch` (placed on its canvas) before the window."""
        start, graphs = time.perf_counter(), compiled_graphs()
        for canvas in self.buckets:
            self._warm(batch, canvas)
            if self._limit_hits:
                name, limit = compat.recompile_limit()
                raise ConfigError(
                    f"warming shape bucket {describe([canvas])[0]} of {len(self.buckets)}: "
                    f"{self._limit_hits[0]} ({graphs} graph(s) compiled before), so the "
                    f"backbone would run eager; lower DATALOADER.SHAPE_BUCKETS or raise "
                    f"torch._dynamo.config.{name} ({limit})"
                )
        self.adapter.synchronize(self.index)
        self._warmup_s = time.perf_counter() - start
        if self.timers.timers[0].warmup == 0:
            self._open_window()

    def step_end(self, images: int, boundary: bool = False) -> None:
        """An iteration's compute is done; `boundary`: paused work follows, sync first."""
        self.conduct.active = False
        self.timers.step_end(images, boundary)
        self._whole = (self._whole[0] + images, 0.0)
        if self.timers.warmup_done:
            self._open_window()

    def excluding(self, fn: Callable[..., T]) -> Callable[..., T]:
        """`fn` on the paused clock: neither step time nor conduct."""
        return self.clock.excluding(fn)

    def fit(
        self,
        trainer: Trainer,
        loader: Iterable[Batch],
        evaluation: EvalHook | None = None,
    ) -> list[float]:
        """Train over the whole run; returns the last losses read (sum), empty when none was.
        With sync 'window' the trainer reads and reduces its losses only at log periods."""
        self._model = trainer.model
        self.conduct.uses(self._model)  # a window without warm-up opened before the model came
        self.log_period = trainer.log_period
        trainer.loss_period = trainer.log_period if self.sync == "window" else 1
        self._warm = functools.partial(_warm_training, trainer)
        last: list[float] = []

        def timed(_trainer: Trainer, step: StepResult) -> bool:
            due = evaluation is not None and evaluation.due(step.iteration)
            self.step_end(step.images, boundary=due)
            if step.losses is not None:
                last[:] = [sum(step.losses.values())]
            return False

        hooks = TrainHooks(after_step=[timed])  # first: the step ends before any paused work
        if evaluation is not None:
            hooks.after_step.append(self.excluding(evaluation))
        with self._restoring():
            trainer.fit(self.batches(loader), 0, self.timers.total, hooks)
        return last

    @contextlib.contextmanager
    def _restoring(self) -> Iterator[None]:
        """A loop that stops by an error or a signal closes the window on its way out, so
        torch.Tensor and the adapter get their own methods back (the process may go on)."""
        try:
            yield
        except BaseException:
            self.conduct.close(0)
            self._limit_watch.close()
            raise

    def train_compute_only(self, trainer: Trainer) -> None:
        """The compute-only pass of `fit`'s steps (they train on: call after saving weights)."""
        read = trainer.loss_period == 1

        def step(batch: Batch) -> int:
            trainer.step(batch[0], batch[1], read=read)
            return len(batch[0].image_sizes)

        self.compute_only(step)

    def infer(
        self,
        model: torch.nn.Module,
        loader: Iterable[Batch],
        precision: str,
        convert: Callable[[int, Any], T] | None = None,
    ) -> dict[int, Any]:
        """Predictions of the measured batches by dataset index (`convert` runs paused), then
        the compute-only pass."""
        self._model = model
        self.conduct.uses(self._model)  # a window without warm-up opened before the model came
        self._warm = lambda batch, canvas: predict_batch(
            model, on_canvas(batch[0], canvas), self.adapter, precision
        )
        with self._restoring():
            results = compute_on_dataset(
                model,
                self.batches(itertools.islice(loader, self.timers.total)),
                self.adapter,
                self.index,
                precision,
                on_batch=self.step_end,
                convert=self.excluding(convert) if convert is not None else None,
            )

        def predict(batch: Batch) -> int:
            predict_batch(model, batch[0], self.adapter, precision)
            return len(batch[2])

        with torch.no_grad():
            self.compute_only(predict)
        return results

    def _close(self) -> Counts:
        if self._counts is None:  # the run ends: the whole run's wall time ends with it
            self._whole = (self._whole[0], time.perf_counter() - (self._whole_start or 0.0))
            iters = sum(w.measured_iters for w in self.timers.windows())
            self._counts = self.conduct.close(iters)
            self._limit_watch.close()
        return self._counts

    def compute_only(self, step: Callable[[Any], int]) -> None:
        """Rule 7's compute-only pass, after the window: `step(batch)` (returning its images)
        on the window's last batches, already on the card, cycled; no data I/O. Every rank
        runs it the same number of times."""
        self._close()
        iters = min(sum(w.measured_iters for w in self.timers.windows()), COMPUTE_ONLY_ITERS)
        if not self._kept or iters == 0:
            return
        timer = IterationTimer(self.conduct.synchronize, 0, sync=self.sync, iters=iters)
        for batch in timer.iterate(itertools.islice(itertools.cycle(self._kept), iters)):
            timer.step_end(step(batch))
        self._compute = timer.window()

    def finish(self) -> dict | None:
        """Every rank: close the window, gather it; rank 0 gets timing, memory and conduct
        fields (latency per batch for inference), other ranks None."""
        windows = [reduce_across_ranks(w) for w in self.timers.windows()]
        iters = sum(w.measured_iters for w in self.timers.windows())
        counts = self._close()
        limits = budget(
            self.mode,
            self.sync,
            self.log_period,
            iters,
            self.adapter.supports_pinned_memory(),
        )
        own = (counts, broken(counts, limits, self.conduct.own_card))
        ranks = comm.all_gather_objects(own)
        peaks = comm.all_gather_objects(self.adapter.peak_memory_mb(self.index))
        shapes = sum(comm.all_gather_objects(self.shapes), Counter())
        wholes = comm.all_gather_objects(self._whole)
        hits = [hit for found in comm.all_gather_objects(self._limit_hits) for hit in found]
        compute = reduce_across_ranks(self._compute) if self._compute is not None else None
        if not comm.is_main_process():
            return None
        fields = summarize(windows, latency=self.mode == "infer")
        fields.update(
            peak_mem_mb=max((p for p in peaks if p is not None), default=None),
            peak_mem_kind=self.adapter.peak_memory_kind,
            data_time_covers=DATA_TIME_COVERS,
            conduct=conduct_field(ranks),
            batch_shapes=dict(shapes) or None,
            shape_buckets=describe(self.buckets) or None,
            bucket_warmup_s=self._warmup_s,
        )
        fields.update(throughputs(fields["throughput_img_s"], wholes, compute))
        recompiled = max(counts.recompiles for counts, _ in ranks)
        if hits:  # a frame past the limit runs eager from then on, compiling nothing more
            fields.update(
                status="failed",
                error=f"{hits[0]} during the run (batch shapes {', '.join(sorted(shapes))}): "
                "the backbone ran eager from then on; use fewer shapes (DATALOADER.SHAPE_BUCKETS)",
            )
        elif recompiled:  # the window timed compilation
            fields.update(
                status="failed",
                error=f"{recompiled} recompilation(s) inside the measured window (batch shapes "
                f"{', '.join(sorted(shapes))}): warm-up did not see every shape the window "
                "ran; raise --warmup or pad batches to fewer sizes (DATALOADER.SHAPE_BUCKETS)",
            )
        return fields
