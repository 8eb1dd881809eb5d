"""Timers and statistics of benchmark.measure, on known inputs and a simulated async device."""

import multiprocessing as mp
import statistics
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.measure import (
    DATA_BOUND_SHARE,
    IterationTimer,
    TimedRun,
    Window,
    _warm_training,
    percentile,
    reduce_across_ranks,
    spread,
    summarize,
)
from rcnn.compat import compile_unavailable_reason, recompile_limit
from rcnn.config import ConfigError, load_config
from rcnn.data.buckets import bucket_canvases
from rcnn.data.collate import BatchCollator
from rcnn.device import resolve
from rcnn.engine.prefetch import prefetch_to_device
from rcnn.engine.trainer import Trainer
from rcnn.modeling.detector import build_detection_model
from rcnn.structures.bounding_box import BoxList
from rcnn.structures.image_list import to_image_list


class FakeDevice:
    """A device whose work runs asynchronously: the clock only reaches it at synchronize()."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pending = 0.0
        self.syncs = 0

    def clock(self) -> float:
        return self.now

    def host(self, seconds: float) -> None:
        self.now += seconds

    def launch(self, seconds: float) -> None:
        self.pending += seconds

    def synchronize(self) -> None:
        self.syncs += 1
        self.now += self.pending
        self.pending = 0.0


def test_percentiles_of_1_to_100():
    values = list(range(1, 101))
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 90) == pytest.approx(90.1)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([3, 1, 2], 50) == 2  # order statistics, whatever the input order


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=50),
    st.floats(0, 100),
)
def test_percentile_matches_numpy_linear(values, q):
    assert percentile(values, q) == pytest.approx(np.percentile(values, q), abs=1e-9)


def test_percentile_rejects_bad_input():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_spread_of_repeats():
    assert spread([10.0, 30.0, 20.0, 40.0, 50.0]) == {
        "median": 30.0,
        "min": 10.0,
        "max": 50.0,
        "iqr": pytest.approx(20.0),  # p75 40 - p25 20
    }


def test_timer_syncs_at_every_boundary_and_times_async_work():
    dev = FakeDevice()
    timer = IterationTimer(dev.synchronize, warmup=2, clock=dev.clock)

    def loader():
        for _ in range(10):
            dev.host(0.010)  # host-side decode
            yield "batch"

    for i, _batch in enumerate(timer.iterate(loader())):
        dev.launch(0.050 + (1.0 if i == 0 else 0.0))  # queued compute; the first compiles
        timer.step_end(images=4)

    assert dev.syncs == 1 + 2 * 10  # start, then after the batch and after the compute
    w = timer.window()
    assert (w.warmup_iters, w.measured_iters, w.images) == (2, 8, 32)
    assert w.first_iter_s == pytest.approx(1.060)
    assert w.step_s == pytest.approx([0.060] * 8)
    assert w.data_s == pytest.approx([0.010] * 8)
    assert w.compute_s == pytest.approx([0.050] * 8)
    assert w.wall_s == pytest.approx(dev.now - (1.060 + 0.060))  # window opens after warm-up
    assert w.wall_s == pytest.approx(sum(w.step_s))  # contiguous iterations


def test_copy_queued_while_loading_is_data_time():
    dev = FakeDevice()
    timer = IterationTimer(dev.synchronize, warmup=0, clock=dev.clock)
    timer.start()
    for _ in range(3):
        dev.host(0.010)
        dev.launch(0.005)  # non_blocking .to(device) of the batch
        timer.data_end()
        dev.launch(0.020)
        timer.step_end(images=2)
    w = timer.window()
    assert w.data_s == pytest.approx([0.015] * 3)
    assert w.compute_s == pytest.approx([0.020] * 3)
    assert w.first_iter_s == pytest.approx(0.035)  # with no warm-up it is also measured
    assert dev.syncs == 1 + 2 * 3


class SlowCopyImages:
    """Images whose copy to the card takes 30 ms (a stand-in for a slow host-to-device link)."""

    image_sizes = [(8, 8)]

    def to(self, device, non_blocking=False):
        time.sleep(0.030)
        return self


def test_a_slow_copy_is_data_time_not_compute():
    adapter, index = resolve("cpu")
    timer = IterationTimer(lambda: adapter.synchronize(index), warmup=0)
    batches = [(SlowCopyImages(), [], [i]) for i in range(4)]
    for images, _targets, _ids in timer.iterate(prefetch_to_device(batches, adapter, index)):
        time.sleep(0.005)  # the compute
        timer.step_end(images=len(images.image_sizes))
    w = timer.window()
    # the first wait holds two copies (the batch and the one prefetched behind it), the last none
    assert w.data_s[0] >= 0.060 and all(d >= 0.030 for d in w.data_s[1:3])
    assert sum(w.data_s) >= 4 * 0.030
    assert all(0.005 <= c < 0.030 for c in w.compute_s)


def test_window_sync_policy_syncs_only_at_the_window_edges():
    dev = FakeDevice()
    timer = IterationTimer(dev.synchronize, warmup=2, clock=dev.clock, sync="window", iters=5)
    for _batch in timer.iterate(range(7)):
        dev.host(0.001)  # the host queues the step and runs ahead
        dev.launch(0.050)
        timer.step_end(images=2)
    assert dev.syncs == 3  # start, end of the warm-up, end of the window
    w = timer.window()
    assert w.measured_iters == 5 and w.sync == "window"
    assert w.wall_s == pytest.approx(5 * 0.051)  # the edges wait for the queued work
    fields = summarize(w, latency=True)
    assert fields["sync"] == "window" and fields["latency_ms"] is None
    assert fields["throughput_img_s"] == pytest.approx(10 / 0.255)
    with pytest.raises(ValueError, match="iters"):
        IterationTimer(dev.synchronize, warmup=0, sync="window")


def test_timer_with_real_cpu_adapter_synchronize():
    adapter, index = resolve("cpu")
    calls = []

    def sync():
        calls.append(1)
        adapter.synchronize(index)

    timer = IterationTimer(sync, warmup=1)
    x = torch.randn(64, 64)
    batches = [x] * 4
    for batch in timer.iterate(batches):
        (batch @ batch).sum().item()
        timer.step_end(images=batch.shape[0])
    assert len(calls) == 1 + 2 * len(batches)
    fields = summarize(timer.window(), latency=True)
    assert fields["measured_iters"] == 3 and fields["warmup_iters"] == 1
    assert fields["throughput_img_s"] > 0 and fields["first_iter_s"] > 0
    assert 0 <= fields["data_time_share"] < 1


def test_timer_refuses_out_of_order_calls():
    timer = IterationTimer(lambda: None, warmup=0)
    with pytest.raises(RuntimeError):
        timer.data_end()
    timer.start()
    with pytest.raises(RuntimeError):
        timer.step_end(images=1)


def window(step_ms, data_ms, images_per_step=2, first=1.5):
    step = [s / 1000 for s in step_ms]
    data = [d / 1000 for d in data_ms]
    return Window(
        warmup_iters=3,
        first_iter_s=first,
        measured_iters=len(step),
        images=images_per_step * len(step),
        wall_s=sum(step),
        step_s=step,
        data_s=data,
        compute_s=[s - d for s, d in zip(step, data, strict=True)],
    )


def test_summarize_one_window():
    w = window([100.0] * 9 + [200.0], [10.0] * 10)
    f = summarize(w, latency=True)
    assert f["warmup_iters"] == 3 and f["measured_iters"] == 10 and f["repeats"] == 1
    assert f["throughput_img_s"] == pytest.approx(20 / 1.1)
    assert f["step_time_ms"]["mean"] == pytest.approx(110.0)
    assert f["step_time_ms"]["p50"] == pytest.approx(100.0)
    assert f["step_time_ms"]["p90"] == pytest.approx(110.0)  # rank 8.1 between 100 and 200
    assert f["step_time_ms"]["p99"] == pytest.approx(191.0)
    assert f["latency_ms"]["p50"] == pytest.approx(90.0)
    assert f["data_time_share"] == pytest.approx(100 / 1100)
    assert f["data_bound"] is False
    assert f["first_iter_s"] == 1.5
    assert summarize(w)["latency_ms"] is None  # training has no per-batch latency


def test_data_bound_above_threshold():
    assert DATA_BOUND_SHARE == 0.2
    assert summarize(window([100.0] * 4, [21.0] * 4))["data_bound"] is True
    assert summarize(window([100.0] * 4, [20.0] * 4))["data_bound"] is False


def test_summarize_repeats_median_and_spread():
    repeats = [
        window([100.0] * 4, [5.0] * 4),
        window([50.0] * 4, [5.0] * 4, first=0.2),
        window([80.0] * 4, [40.0] * 4, first=0.2),
    ]
    f = summarize(repeats)
    assert f["repeats"] == 3 and f["measured_iters"] == 12
    assert f["throughput_img_s"] == pytest.approx(25.0)  # median of 20, 40, 25
    assert f["throughput_spread"] == {
        "median": pytest.approx(25.0),
        "min": pytest.approx(20.0),
        "max": pytest.approx(40.0),
        "iqr": pytest.approx(10.0),
    }
    assert f["data_time_share"] == pytest.approx(0.1)  # median of 0.05, 0.1, 0.5
    assert f["step_time_ms"]["p50"] == pytest.approx(80.0)  # pooled over the 12 iterations
    assert f["first_iter_s"] == 1.5  # the cold first repeat


def test_summarize_refuses_an_empty_window():
    timer = IterationTimer(lambda: None, warmup=5)
    with pytest.raises(ValueError, match="warm-up"):
        summarize(timer.window())


def test_reduce_without_distributed_is_identity():
    w = window([10.0], [1.0])
    assert reduce_across_ranks(w) is w


def _rank(rank: int, store: str, out: mp.Queue) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=2
    )
    w = window([100.0 * (rank + 1)] * 3, [10.0] * 3, images_per_step=4, first=1.0 + rank)
    g = reduce_across_ranks(w)
    out.put((rank, g.images, g.wall_s, sorted(g.step_s), g.measured_iters, g.first_iter_s))
    torch.distributed.destroy_process_group()


def test_reduce_across_two_real_ranks(tmp_path):
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, str(tmp_path / "store"), out)) for r in (0, 1)]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    for _rank_id, images, wall, steps, iters, first in results:
        assert images == 24  # 2 ranks x 3 steps x 4 images
        assert wall == pytest.approx(0.6)  # the slower rank's window
        assert steps == pytest.approx([0.1] * 3 + [0.2] * 3)
        assert iters == 3 and first == 2.0
    assert statistics.fmean(steps) == pytest.approx(0.15)


def _needs_compile() -> None:
    reason = compile_unavailable_reason()
    if reason is not None:
        pytest.skip(f"torch.compile: {reason}")


def _compiled_run(shapes: list[int], warmup: int) -> dict:
    """A compiled module (dynamo, eager backend: fast) over inputs of `shapes`, timed by the
    contract; the first `warmup` inputs are the warm-up."""
    _needs_compile()
    adapter, index = resolve("cpu")
    torch._dynamo.reset()
    layer = torch.nn.Linear(4, 4)
    layer.compile(backend="eager", dynamic=False)
    run = TimedRun(adapter, index, warmup, len(shapes) - warmup)
    for (x,) in run.batches([(torch.rand(n, 4),) for n in shapes], copy=False):
        layer(x)
        run.step_end(images=1)
    return run.finish()


def test_a_window_that_recompiles_fails_its_cell_and_one_that_does_not_counts_zero():
    warm = _compiled_run([2, 3, 2, 3], warmup=2)  # the window's shapes were warmed up
    assert warm["conduct"]["recompiles"] == 0 and "status" not in warm
    cold = _compiled_run([2, 2, 3, 2], warmup=2)  # a new shape inside the window
    assert cold["conduct"]["recompiles"] == 1
    assert cold["status"] == "failed" and "1 recompilation(s) inside" in cold["error"]
    assert any("recompilations inside the window" in b for b in cold["conduct"]["budget_broken"])


def test_hitting_the_recompile_limit_anywhere_in_the_run_fails_it():
    """Past the limit dynamo compiles nothing more and runs the frame eager: the window then
    counts 0 recompiles, so the limit's own warning must fail the cell."""
    name, _ = recompile_limit()
    with torch._dynamo.config.patch(**{name: 1}):
        fields = _compiled_run([2, 3, 2, 3], warmup=2)  # the limit is hit in the warm-up
    assert fields["conduct"]["recompiles"] == 0
    assert fields["status"] == "failed"
    assert f"torch._dynamo hit config.{name} (1) during the run" in fields["error"]


class TinyDetector(torch.nn.Module):
    """A detector's interface around a backbone to compile: losses when training, one BoxList
    per image otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = torch.nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, images, targets=None):
        features = self.backbone(images.tensors)
        if self.training:
            return {"loss_features": features.mean()}
        box = features.new_ones(1, 4) * features.mean()
        return [BoxList(box, (w, h)) for h, w in images.image_sizes]


QUICK = "models/configs/quick/faster_rcnn_R_18_FPN_quick.yaml"

# warm-up's image first, then the window's: every one lands on another bucket (64x64 on 64x96)
ASPECTS = [(64, 90), (90, 64), (64, 120), (120, 64), (64, 64)]


def _bucketed_run(mode: str) -> dict:
    """TinyDetector's backbone compiled (dynamo, eager backend: fast) for static shapes, over
    images of several aspect ratios collated onto shape buckets, one warm-up iteration."""
    _needs_compile()
    adapter, index = resolve("cpu")
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = TinyDetector()
    model.backbone.compile(backend="eager", dynamic=False)
    canvases = bucket_canvases((64,), 128, 32, 2)
    collate = BatchCollator(32, canvases)
    target = BoxList(torch.tensor([[1.0, 1.0, 8.0, 8.0]]), (8, 8))
    batches = [collate([(torch.rand(3, h, w), target, i)]) for i, (h, w) in enumerate(ASPECTS)]
    run = TimedRun(adapter, index, 1, len(ASPECTS) - 1, mode=mode, buckets=canvases)
    if mode == "infer":
        run.infer(model, batches, "fp32")
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        run.fit(Trainer(model, optimizer, schedule, adapter, index, log_period=1), batches)
    return run.finish()


@pytest.mark.parametrize("mode", ["infer", "train"])
def test_every_shape_bucket_is_compiled_before_the_window(mode):
    fields = _bucketed_run(mode)
    assert fields["shape_buckets"] == ["64x96", "96x64", "64x128", "128x64", "128x128"]
    assert sorted(fields["batch_shapes"]) == ["128x64", "64x128", "64x96", "96x64"]
    assert fields["conduct"]["recompiles"] == 0 and "status" not in fields
    assert fields["bucket_warmup_s"] > 0


def test_warming_a_training_bucket_smaller_than_the_batch_cuts_its_targets_and_updates_nothing():
    adapter, index = resolve("cpu")
    torch.manual_seed(0)
    model = build_detection_model(load_config(QUICK, []))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    trainer = Trainer(model, optimizer, schedule, adapter, index)
    images = to_image_list([torch.rand(3, 96, 150) * 50], 32)  # on 96x160
    target = BoxList(torch.tensor([[10.0, 10.0, 140.0, 80.0]]), (150, 96))
    target.add_field("labels", torch.tensor([1]))
    weights = [p.detach().clone() for p in model.parameters()]
    _warm_training(trainer, (images, [target], [0]), (96, 128))
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(w, p) for w, p in zip(weights, model.parameters(), strict=True))


def test_hitting_the_recompile_limit_while_warming_buckets_fails_before_the_window():
    name, _ = recompile_limit()
    with torch._dynamo.config.patch(**{name: 2}), pytest.raises(ConfigError) as failed:
        _bucketed_run("infer")
    assert str(failed.value).startswith(
        f"warming shape bucket 64x128 of 5: torch._dynamo hit config.{name} (2)"
    )
    assert "\n" not in str(failed.value)


def test_three_throughputs_tell_a_slow_loader_from_the_step():
    """A loader that waits 60 ms per batch feeds a 10 ms step: the window is data-bound,
    compute-only (the kept batches cycled, no loader) is not, and the whole run counts the
    warm-up and the paused work too."""
    adapter, index = resolve("cpu")

    def loader():
        for i in range(6):
            time.sleep(0.060)
            yield (torch.zeros(1), [], [i])

    run = TimedRun(adapter, index, warmup=1, iters=5)
    paused = run.excluding(lambda: time.sleep(0.100))
    for _batch in run.batches(loader(), copy=False):
        time.sleep(0.010)
        run.step_end(images=1)
        paused()
    steps = []
    run.compute_only(lambda batch: steps.append(batch[2]) or time.sleep(0.010) or 1)
    fields = run.finish()
    assert steps == [[4], [5]] * 2 + [[4]]  # the window's last two batches, cycled
    assert fields["throughput_img_s"] == pytest.approx(1 / 0.070, rel=0.3)
    assert fields["throughput_compute_only_img_s"] > 3 * fields["throughput_img_s"]
    assert fields["data_bound_share"] == pytest.approx(1 - 10 / 70, abs=0.15)
    # 6 images over 6 x (60 + 10 + 100) ms: the paused work is the user's time too
    assert fields["throughput_whole_img_s"] == pytest.approx(6 / (6 * 0.170), rel=0.3)


def test_a_loop_that_fails_in_its_window_gives_torch_its_methods_back():
    """Conduct patches torch.Tensor's read methods while the window is open; a loop stopped by
    an error must restore them, or every later tensor in the process reads through a dead
    counter (a full test run broke test_mask_head's indexing that way)."""
    adapter, index = resolve("cpu")
    before = {name: vars(torch.Tensor).get(name) for name in ("item", "tolist", "__getitem__")}
    run = TimedRun(adapter, index, 0, 3)  # no warm-up: the window opens at once

    class FailingTrainer:
        model = torch.nn.Linear(1, 1)
        log_period, loss_period = 20, 1

        def fit(self, batches, start, total, hooks) -> None:
            next(iter(batches))
            raise RuntimeError("a step failed")

    with pytest.raises(RuntimeError, match="a step failed"):
        run.fit(FailingTrainer(), [(torch.zeros(1), [], [0])])
    assert {name: vars(torch.Tensor).get(name) for name in before} == before
    assert "synchronize" not in vars(adapter)
    assert torch.arange(3)[torch.tensor(1)].item() == 1
