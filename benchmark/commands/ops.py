"""`python -m benchmark ops`: native detection ops against the device's kernels, at detector sizes.

Each case times the kernel (torchvision.ops, or what a vendor registered under it) and the
native op on the same inputs: median wall time of the repeats after warm-up, every timing
bracketed by the device adapter's synchronize.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from benchmark.errors import UsageError
from benchmark.measure import IterationTimer
from benchmark.workload.args import add_threads_argument
from rcnn.device import DeviceAdapter, resolve
from rcnn.device.reasons import missing_operator, reason
from rcnn.layers import dispatch, native
from rcnn.utils.env import host_threads

IMAGE_H, IMAGE_W = 800, 1333  # maskrcnn-benchmark's test size
FPN_SCALES = (1 / 4, 1 / 8, 1 / 16, 1 / 32)  # P2-P5
CHANNELS = 256


@dataclass
class Case:
    op: str  # dispatch op deciding the kernel
    name: str  # function in torchvision.ops and rcnn.layers.native
    label: str
    make: Callable[[torch.device], Callable[[Callable], object]]  # inputs -> run(fn)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ops", help="time native vs kernel nms, roi_align and roi_pool")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mlu, npu, ...")
    p.add_argument("--repeats", type=int, default=10, help="timed calls per case (median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    p.add_argument(
        "--case",
        action="append",
        dest="cases",
        metavar="TEXT",
        help="time only the cases whose op or description contains TEXT (repeat for more)",
    )
    add_threads_argument(p)
    p.set_defaults(func=run)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _proposals(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """RPN-like proposals: clusters of overlapping boxes around objects, plus background."""
    gen = _generator(seed)
    objects = 30
    centre = torch.rand(objects, 2, generator=gen) * torch.tensor([IMAGE_W, IMAGE_H])
    size = torch.exp(torch.empty(objects, 2).uniform_(math.log(32), math.log(512), generator=gen))
    pick = torch.randint(0, objects, (count,), generator=gen)
    jitter = 1 + 0.2 * torch.randn(count, 2, generator=gen)
    wh = size[pick] * jitter.abs()
    xy = centre[pick] + 0.15 * size[pick] * torch.randn(count, 2, generator=gen)
    background = torch.rand(count, generator=gen) < 0.3
    xy[background] = torch.rand(int(background.sum()), 2, generator=gen) * torch.tensor(
        [IMAGE_W, IMAGE_H]
    )
    boxes = torch.cat((xy - wh / 2, xy + wh / 2), dim=1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, IMAGE_W - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, IMAGE_H - 1)
    return boxes, torch.rand(count, generator=gen)


def _rois(count: int, images: int, seed: int) -> torch.Tensor:
    """[count, 5] rois of 16-800 px (log-uniform) anywhere in the images."""
    gen = _generator(seed)
    side = torch.exp(torch.empty(count, 2).uniform_(math.log(16), math.log(800), generator=gen))
    xy = torch.rand(count, 2, generator=gen) * torch.tensor([IMAGE_W, IMAGE_H])
    boxes = torch.cat((xy, xy + side), dim=1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, IMAGE_W - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, IMAGE_H - 1)
    batch = torch.randint(0, images, (count, 1), generator=gen).float()
    return torch.cat((batch, boxes), dim=1)


def _fpn_level(rois: torch.Tensor) -> torch.Tensor:
    """maskrcnn-benchmark's level mapper: index 0..3 for P2..P5 (canonical 224 at level 4)."""
    side = ((rois[:, 3] - rois[:, 1] + 1) * (rois[:, 4] - rois[:, 2] + 1)).sqrt()
    return (torch.floor(4 + torch.log2(side / 224 + 1e-6)).clamp(2, 5) - 2).long()


def _feature(images: int, scale: float, seed: int, channels: int = CHANNELS) -> torch.Tensor:
    shape = (images, channels, math.ceil(IMAGE_H * scale), math.ceil(IMAGE_W * scale))
    return torch.randn(shape, generator=_generator(seed))


def _nms_case(count: int, threshold: float) -> Callable:
    def make(device: torch.device) -> Callable:
        boxes, scores = (t.to(device) for t in _proposals(count, seed=0))
        return lambda fn: fn(boxes, scores, threshold)

    return make


def _batched_nms_case(count: int, categories: int, threshold: float) -> Callable:
    def make(device: torch.device) -> Callable:
        boxes, scores = (t.to(device) for t in _proposals(count, seed=1))
        idxs = torch.randint(0, categories, (count,), generator=_generator(2)).to(device)
        return lambda fn: fn(boxes, scores, idxs, threshold)

    return make


def _single_level_case(count: int, size: int, *pool_args: object) -> Callable:
    def make(device: torch.device) -> Callable:
        feature = _feature(1, FPN_SCALES[0], seed=3).to(device)
        rois = _rois(count, 1, seed=4).to(device)
        return lambda fn: fn(feature, rois, size, FPN_SCALES[0], *pool_args)

    return make


def _box_head_case(images: int, per_image: int, backward: bool) -> Callable:
    """The box head's pooler: rois spread over P2-P5 by size, 7x7, sampling ratio 2."""

    def make(device: torch.device) -> Callable:
        features = [_feature(images, s, seed=5 + i).to(device) for i, s in enumerate(FPN_SCALES)]
        for feature in features:
            feature.requires_grad_(backward)
        rois = _rois(images * per_image, images, seed=9)
        levels = _fpn_level(rois)
        per_level = [rois[levels == i].to(device) for i in range(len(FPN_SCALES))]

        def pool(fn: Callable) -> None:
            outs = [
                fn(f, r, 7, s, 2, False)
                for f, r, s in zip(features, per_level, FPN_SCALES, strict=True)
            ]
            if backward:
                torch.autograd.backward(outs, [torch.ones_like(o) for o in outs])

        return pool

    return make


def _c4_case(count: int) -> Callable:
    """A C4 head: 14x14 from stride-16 res4 features (1024 channels), adaptive sampling."""

    def make(device: torch.device) -> Callable:
        feature = _feature(1, 1 / 16, seed=10, channels=1024).to(device)
        rois = _rois(count, 1, seed=11).to(device)
        return lambda fn: fn(feature, rois, 14, 1 / 16, 0, False)

    return make


P2 = "on P2 200x336"
CASES = (
    Case("nms", "nms", "2000 RPN proposals, iou 0.7", _nms_case(2000, 0.7)),
    Case(
        "nms", "batched_nms", "4000 boxes / 80 classes, iou 0.5", _batched_nms_case(4000, 80, 0.5)
    ),
    Case(
        "roi_align", "roi_align", f"1000 rois 7x7 {P2}, sr 2", _single_level_case(1000, 7, 2, False)
    ),
    Case(
        "roi_align",
        "roi_align",
        f"1000 rois 14x14 {P2}, sr 2",
        _single_level_case(1000, 14, 2, False),
    ),
    Case("roi_align", "roi_align", "box head 4x512 rois P2-P5 7x7", _box_head_case(4, 512, False)),
    Case(
        "roi_align",
        "roi_align",
        "box head 4x512 rois P2-P5 7x7 fwd+bwd",
        _box_head_case(4, 512, True),
    ),
    Case("roi_align", "roi_align", "C4 1000 rois 14x14, 1024 ch, sr 0", _c4_case(1000)),
    Case("roi_pool", "roi_pool", f"1000 rois 7x7 {P2}", _single_level_case(1000, 7)),
)


def time_ms(
    call: Callable[[], object], sync: Callable[[], None], warmup: int, repeats: int
) -> float:
    """Median milliseconds of `repeats` synchronized calls after `warmup` untimed ones."""
    timer = IterationTimer(sync, warmup=warmup)
    for _ in timer.iterate(range(warmup + repeats)):
        call()
        timer.step_end(images=0)
    return 1000 * statistics.median(timer.window().compute_s)


def agreement(kernel_out: object, native_out: object) -> str:
    """How the kernel's result compares with the native one, as one token: `same` (equal),
    the largest absolute difference of float outputs, or `differ` (indices, shapes)."""
    if not isinstance(kernel_out, torch.Tensor) or not isinstance(native_out, torch.Tensor):
        return "-"  # a case that only runs (a backward pass) has nothing to compare
    a, b = kernel_out.detach().cpu(), native_out.detach().cpu()
    if a.shape != b.shape or (not a.is_floating_point() and not torch.equal(a, b)):
        return "differ"
    if not a.is_floating_point() or a.numel() == 0 or torch.equal(a, b):
        return "same"
    return f"{(a.double() - b.double()).abs().max().item():.1e}"


def _format_ms(ms: float | None) -> str:
    if ms is None:
        return "n/a"
    return f"{ms:.2f}" if ms >= 1 else f"{ms:.4f}"  # sub-millisecond cases keep 3 digits


def selected(texts: list[str] | None) -> list[Case]:
    """The cases whose op name or label contains one of `texts` (all with none)."""
    if not texts:
        return list(CASES)
    chosen = [c for c in CASES if any(t in c.name or t in c.label for t in texts)]
    if not chosen:
        known = "; ".join(f"{c.name}: {c.label}" for c in CASES)
        raise UsageError(f"--case {' / '.join(texts)} matches no case; cases: {known}")
    return chosen


def run(args: argparse.Namespace) -> int:
    if args.repeats < 1 or args.warmup < 0:
        raise UsageError("--repeats must be >= 1 and --warmup >= 0")
    selected(args.cases)  # a bad filter fails before the device is touched
    with host_threads(args.threads):
        return _run(args)


def card_label(adapter: DeviceAdapter, index: int) -> str:
    """The card's name; for a card without one, its device type and how many cards there are."""
    name = adapter.card_name(index)
    if name:
        return name
    count = adapter.device_count()
    return f"unnamed {adapter.name} card, {count} card{'s' if count != 1 else ''}"


def _run(args: argparse.Namespace) -> int:
    adapter, index = resolve(args.device)
    adapter.set_device(index)
    device = adapter.torch_device(index)
    print(
        f"device: {device} ({card_label(adapter, index)}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} host threads"
    )
    usable, native_missing = {}, {}
    for op in dispatch.OPS:
        usable[op], why = dispatch.check_kernel(op, device)
        missing = native_missing[op] = dispatch.check_native(op, device)
        native_says = "native ok" if missing is None else f"native unusable: {missing}"
        print(f"  {op}: kernel {'ok' if usable[op] else 'unusable'} ({why}); {native_says}")

    def sync() -> None:
        adapter.synchronize(index)

    rows = []
    for case in selected(args.cases):
        try:
            row = _measure(case, device, sync, args, usable[case.op], native_missing[case.op])
            rows.append(row)
        except Exception as err:  # an op the device lacks at this size: the row says which
            rows.append((case.name, case.label, f"unusable: {_missing(err)}", "n/a", "n/a", "n/a"))
    header = ("op", "case", "kernel vs native", "kernel ms", "native ms", "native/kernel")
    _print_table(header, rows)
    return 0


def _missing(err: BaseException) -> str:
    missing = missing_operator(err)
    return f"{missing} missing" if missing else reason(err)


def _measure(
    case: Case,
    device: torch.device,
    sync: Callable[[], None],
    args: argparse.Namespace,
    kernel_runs: bool,
    native_missing: str | None,
) -> tuple[str, ...]:
    """One row: the kernel and the native op timed on the case's inputs, where each runs."""
    native_runs = native_missing is None
    run_case = case.make(device)
    kernel_ms = native_ms = None
    agree = "n/a"
    native_run = partial(run_case, getattr(native, case.name))
    if kernel_runs:
        kernel = partial(run_case, getattr(dispatch.load_kernels(), case.name))
        if native_runs:
            agree = agreement(kernel(), native_run())
        kernel_ms = time_ms(kernel, sync, args.warmup, args.repeats)
    if native_runs:
        native_ms = time_ms(native_run, sync, args.warmup, args.repeats)
    if kernel_ms is None and native_ms is None:
        agree = f"unusable: {native_missing}"
    ratio = f"{native_ms / kernel_ms:.2f}" if kernel_ms and native_ms else "n/a"
    return (case.name, case.label, agree, _format_ms(kernel_ms), _format_ms(native_ms), ratio)


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *rows):
        # Text columns left-aligned, numbers right-aligned.
        left = [c.ljust(w) for c, w in zip(row[:2], widths[:2], strict=True)]
        right = [c.rjust(w) for c, w in zip(row[2:], widths[2:], strict=True)]
        print("  ".join(left + right))
