"""The data side of a loader benchmark, beside the data code (as detectron2's data/benchmark.py).

A config's training loader (dataset, transforms, aspect grouping, collate) at a chosen number of
workers, and each image's time split in two: decode (read and decode the file, build its boxes
and masks) and transform (resize, flip, to tensor, normalize). The harness times the loader
with its one timer; here are only the pieces it times.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset
from yacs.config import CfgNode

from rcnn.data.build import build_datasets, make_data_loader


def train_loader(cfg: CfgNode, workers: int, batches: int) -> DataLoader:
    """The config's training loader with `workers` worker processes, `batches` batches long."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATALOADER.NUM_WORKERS = workers
    cfg.SOLVER.MAX_ITER = batches
    cfg.freeze()
    return make_data_loader(cfg, is_train=True)


@dataclass
class ImageTimes:
    """Seconds per image, in dataset order."""

    decode_s: list[float]
    transform_s: list[float]


def image_times(dataset: Dataset, count: int) -> ImageTimes:
    """Decode and transform times of the dataset's first `count` images (cycled when it has
    fewer), one image at a time on one thread, as a loader worker runs them (torch gives each
    worker one thread; more threads on a busy host only fight over its cores)."""
    transforms, threads = dataset.transforms, torch.get_num_threads()
    times = ImageTimes([], [])
    dataset.transforms = None  # the dataset's own item is then the decoded image and target
    torch.set_num_threads(1)
    try:
        for i in range(count):
            start = time.perf_counter()
            image, target, _ = dataset[i % len(dataset)]
            decoded = time.perf_counter()
            if transforms is not None:
                transforms(image, target)
            times.decode_s.append(decoded - start)
            times.transform_s.append(time.perf_counter() - decoded)
    finally:
        dataset.transforms = transforms
        torch.set_num_threads(threads)
    return times


def first_train_dataset(cfg: CfgNode) -> Dataset:
    """The first of DATASETS.TRAIN, with the training transforms: what `image_times` splits."""
    return build_datasets(cfg, is_train=True)[0]
