"""Batched inference over a dataset on one or many cards, gathered to rank 0, then COCO eval."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from rcnn.device import DeviceAdapter
from rcnn.structures.bounding_box import BoxList
from rcnn.utils import comm

from .coco_eval import evaluate_predictions

logger = logging.getLogger("rcnn.inference")


def compute_on_dataset(
    model: torch.nn.Module,
    data_loader,
    adapter: DeviceAdapter,
    index: int,
    precision: str,
    on_batch: Callable[[int], None] | None = None,
) -> dict[int, BoxList]:
    """Predictions by dataset index; `on_batch(n_images)` lets a timer see each batch end."""
    device = adapter.torch_device(index)
    model.eval()
    results: dict[int, BoxList] = {}
    show = comm.is_main_process() and sys.stderr.isatty()
    with torch.no_grad():
        for images, _targets, idxs in tqdm(data_loader, desc="inference", disable=not show):
            with adapter.autocast(precision):
                outputs = model(images.to(device))
            outputs = [o.to("cpu") for o in outputs]  # the copy waits for the device
            results.update(zip(idxs, outputs, strict=True))
            if on_batch is not None:
                on_batch(len(idxs))
    return results


def gather_predictions(local: dict[int, BoxList]) -> dict[int, BoxList] | None:
    """All ranks' predictions on rank 0 (None elsewhere); distributed samplers pad, so dedupe."""
    parts = comm.all_gather_objects(local)
    if not comm.is_main_process():
        return None
    merged: dict[int, BoxList] = {}
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
) -> dict[str, dict[str, float]] | None:
    """Evaluate a model on a dataset; returns {iou_type: stats} on rank 0, None elsewhere."""
    start = time.perf_counter()
    local = compute_on_dataset(model, data_loader, adapter, index, precision)
    adapter.synchronize(index)
    comm.barrier()
    elapsed = time.perf_counter() - start
    predictions = gather_predictions(local)
    if predictions is None:
        return None
    logger.info(
        "inference on %d images took %.1f s (%d card(s))",
        len(predictions),
        elapsed,
        comm.get_world_size(),
    )
    return evaluate_predictions(predictions, dataset, iou_types, output_dir)
