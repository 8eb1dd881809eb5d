"""Batched inference over a dataset on one or many cards, gathered to rank 0, then COCO eval."""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from tqdm import tqdm

from rcnn.device import DeviceAdapter, on_host
from rcnn.structures.bounding_box import BoxList
from rcnn.utils import comm

from .coco_eval import evaluate_results, image_result
from .prefetch import prefetch_to_device

T = TypeVar("T")

logger = logging.getLogger("rcnn.inference")


def compute_on_dataset(
    model: torch.nn.Module,
    data_loader,
    adapter: DeviceAdapter,
    index: int,
    precision: str,
    on_batch: Callable[[int], None] | None = None,
    prefetch: bool = False,
    convert: Callable[[int, BoxList], T] | None = None,
) -> dict[int, BoxList | T]:
    """Predictions by dataset index, on the host.

    `on_batch(n_images)` lets a timer see each batch end; `convert(idx, prediction)` runs
    after it, outside the batch's time (e.g. pasting masks and RLE-encoding them, so that
    only compact results are kept). With `prefetch`, batches are copied to the card one ahead
    (pinned, non-blocking); a timer that counts the copy as data time does that itself.
    """
    device = adapter.torch_device(index)
    model.eval()
    results: dict[int, BoxList | T] = {}
    show = comm.is_main_process() and sys.stderr.isatty()
    if prefetch:
        data_loader = prefetch_to_device(data_loader, adapter, index)
    with torch.no_grad():
        for images, _targets, idxs in tqdm(data_loader, desc="inference", disable=not show):
            outputs = predict_batch(model, images.to(device), adapter, precision)
            if on_batch is not None:
                on_batch(len(idxs))
            if convert is not None:
                outputs = [convert(i, o) for i, o in zip(idxs, outputs, strict=True)]
            results.update(zip(idxs, outputs, strict=True))
    return results


def predict_batch(
    model: torch.nn.Module, images, adapter: DeviceAdapter, precision: str
) -> list[BoxList]:
    """One batch's detections on the host (call under no_grad, the model in eval mode)."""
    with adapter.autocast(precision):
        outputs = model(images)
    return results_to_host(outputs)  # one read: it waits for the device


def results_to_host(results: list[BoxList]) -> list[BoxList]:
    """A batch's results on the host in one device-to-host copy (each copy is a host sync):
    every tensor's bytes packed into one buffer, copied, and unpacked (cloned: aligned)."""
    tensors = [
        t
        for r in results
        for t in (r.bbox, *r.extra_fields.values())
        if isinstance(t, torch.Tensor) and not on_host(t.device)
    ]
    if not tensors:
        return results
    flat = [t.contiguous().reshape(-1).view(torch.uint8) for t in tensors]
    host = torch.cat(flat).cpu().split([f.numel() for f in flat])
    moved = {
        id(t): h.clone().view(t.dtype).reshape(t.shape) for t, h in zip(tensors, host, strict=True)
    }
    out = []
    for r in results:
        copy = BoxList(moved.get(id(r.bbox), r.bbox), r.size, r.mode)
        for k, v in r.extra_fields.items():
            copy.add_field(k, moved.get(id(v), v) if isinstance(v, torch.Tensor) else v)
        out.append(copy)
    return out


def gather_predictions(local: dict[int, T]) -> dict[int, T] | None:
    """All ranks' predictions on rank 0 only (None elsewhere); distributed samplers pad, so
    an image two ranks predicted is kept once."""
    parts = comm.gather_objects(local)
    if parts is None:
        return None
    merged: dict[int, T] = {}
    for part in parts:
        merged.update(part)
    return dict(sorted(merged.items()))


def inference(
    model: torch.nn.Module,
    data_loader,
    dataset,
    adapter: DeviceAdapter,
    index: int,
    precision: str = "fp32",
    iou_types: tuple[str, ...] = ("bbox",),
    output_dir: str | Path | None = None,
    mask_paste: str = "reference",
) -> dict[str, dict[str, float]] | None:
    """Evaluate a model on a dataset; returns {iou_type: stats} on rank 0, None elsewhere."""
    start = time.perf_counter()
    convert = functools.partial(image_result, dataset=dataset, mask_paste=mask_paste)
    local = compute_on_dataset(
        model, data_loader, adapter, index, precision, prefetch=True, convert=convert
    )
    adapter.synchronize(index)
    comm.barrier()
    elapsed = time.perf_counter() - start
    results = gather_predictions(local)
    if results is None:
        return None
    logger.info(
        "inference on %d images took %.1f s (%d card(s)), masks pasted and encoded included",
        len(results),
        elapsed,
        comm.get_world_size(),
    )
    return evaluate_results(results, dataset, iou_types, output_dir)
