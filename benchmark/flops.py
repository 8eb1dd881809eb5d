"""FLOPs per image and FLOP utilisation: the work a detector does at one input size.

The count runs with torch.utils.flop_counter.FlopCounterMode, on a copy of the run's model
after the measured window (never inside it), on one synthetic image at each padded size the
measured batches had (per size bucket): forward for inference, forward and backward for
training; the record's count per image is their mean weighted by how many batches had each size.
Counts are cached in the process and on disk under the results folder (flops/<key>.json),
keyed by the workload's identity (benchmark.workload.identity: the config without run-specific
keys, the weights' content, the execution mode) and the size, so a second run of the same model
does not recount. Matrix multiplications and convolutions are what FlopCounterMode counts; NMS
and ROIAlign add nothing. The heads after the RPN work on the proposals and detections the
weights give, so the count belongs to the weights too.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.impls import Batch, Impl, RcnnImpl, synthetic_batch
from benchmark.workload.build import Workload
from benchmark.workload.identity import key
from rcnn.device import DeviceAdapter
from rcnn.errors import one_line

_CACHE: dict[str, float] = {}


def count_gflops(impl: Impl, batch: Batch, mode: str) -> float:
    """GFLOPs per image of one forward (infer) or forward + backward (train) of `impl` on
    `batch`, on the device the batch is on."""
    from torch.utils.flop_counter import FlopCounterMode

    impl.model.train(mode == "train")
    counter = FlopCounterMode(display=False)
    with counter:  # not `as`: nothing depends on what __enter__ returns in a given torch
        if mode == "train":
            sum(impl.losses(batch).values()).backward()
        else:
            # no_grad, not inference_mode: torch 2.1's module tracker needs autograd hooks
            with torch.no_grad():
                impl.infer(batch)
    return counter.get_total_flops() / 1e9 / batch.size


def try_count_gflops(impl: Impl, batch: Batch, mode: str) -> tuple[float | None, str | None]:
    """count_gflops, or (None, why) when counting failed (an old torch, an op the counter
    cannot follow): a run never fails for its FLOP count."""
    try:
        return count_gflops(impl, batch, mode), None
    except Exception as exc:  # noqa: BLE001 - any failure leaves the field null, with the reason
        return None, f"FLOP count failed ({type(exc).__name__}: {one_line(exc)})"


# what a FLOP count depends on: not the data nor how long the run went
FLOP_PARTS = ("config", "mode", "weights", "execution")


def gflops_per_image(
    model: nn.Module,
    size_divisible: int,
    num_classes: int,
    size: tuple[int, int],
    mode: str,
    work: str,
    results: str | Path | None = None,
) -> tuple[float | None, str | None]:
    """try_count_gflops on a copy of `model` and one synthetic image of `size` (H, W), cached
    in this process and under `results`/flops/ when given, by `work` (identity.key of the
    workload's FLOP_PARTS) and the size."""
    key = f"{work}-{size[0]}x{size[1]}-{mode}"
    path = Path(results) / "flops" / f"{key}.json" if results is not None else None
    if key not in _CACHE and path is not None and path.is_file():
        _CACHE[key] = float(json.loads(path.read_text())["gflops_per_image"])
    if key in _CACHE:
        return _CACHE[key], None
    # a copy: the run's model (DDP-wrapped or not) keeps its gradients and hooks untouched
    inner = getattr(model, "module", model)
    try:
        device = next(inner.parameters()).device
        impl = RcnnImpl(copy.deepcopy(inner), size_divisible)
    except Exception as exc:  # noqa: BLE001 - a model that cannot be copied is not counted
        return None, f"FLOP count failed ({type(exc).__name__}: {one_line(exc)})"
    batch = synthetic_batch(1, size[0], size[1], num_classes).to(device)
    value, why = try_count_gflops(impl, batch, mode)
    if value is None:
        return None, why
    _CACHE[key] = value
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as tmp:
            json.dump({"gflops_per_image": value, "size": list(size), "mode": mode}, tmp)
        os.replace(tmp.name, path)
    return value, None


def flop_fields(
    gflops: float | None,
    throughput_img_s: float | None,
    cards: int,
    peak_tflops: float | None,
) -> dict[str, Any]:
    """The record's FLOP fields; `peak_tflops` is one card's peak at the run's precision and
    `throughput_img_s` is all cards', so utilisation divides by cards x peak."""
    achieved = None
    if gflops is not None and throughput_img_s is not None:
        achieved = gflops * throughput_img_s / 1000
    utilisation = None
    if achieved is not None and peak_tflops:
        utilisation = achieved / (peak_tflops * cards)
    return {
        "gflops_per_image": gflops,
        "achieved_tflops": achieved,
        "peak_tflops": peak_tflops,
        "flop_utilisation": utilisation,
    }


def run_flop_fields(
    model: nn.Module,
    workload: Workload,
    fields: dict[str, Any],
    args: argparse.Namespace,
    adapter: DeviceAdapter,
    index: int | None,
) -> dict[str, Any]:
    """The FLOP fields of a measured train or infer run of `workload` whose record `fields`
    (throughput, workload, batch_shapes) are known: call after its window. Without measured
    shapes the count is at MIN x MAX. `notes` says why a field is null."""
    cfg = workload.cfg
    shapes = fields.get("batch_shapes") or {
        f"{fields['image_min_size']}x{fields['image_max_size']}": 1
    }
    work = key(fields["workload"], *FLOP_PARTS)
    per_size: dict[str, float] = {}
    why = None
    for shape in shapes:
        h, w = (int(v) for v in shape.split("x"))
        value, why = gflops_per_image(
            model,
            cfg.DATALOADER.SIZE_DIVISIBILITY,
            cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES,
            (h, w),
            workload.mode,
            work,
            args.results,
        )
        if value is None:
            break
        per_size[shape] = value
    gflops = None
    if why is None:
        gflops = sum(per_size[s] * n for s, n in shapes.items()) / sum(shapes.values())
    peak = args.peak_tflops or adapter.peak_tflops(index or 0, cfg.MODEL.PRECISION)
    flops = flop_fields(gflops, fields["throughput_img_s"], workload.cards, peak)
    flops["flop_sizes"] = per_size if why is None else None
    notes = [why] if why else []
    if peak is None:
        notes.append("flop_utilisation: this card's peak is unknown (give --peak-tflops)")
    return {**flops, "notes": notes} if notes else flops
