"""Builders: datasets from catalog names, and the train/test data loaders of a config.

Training order (documented because the engine tests it): one global, seeded shuffle per epoch
(the same on every rank), cut into global batches of SOLVER.IMS_PER_BATCH (grouped by aspect
ratio when asked, uneven batches dropped), repeated for SOLVER.MAX_ITER iterations; rank r of W
then takes the r-th consecutive chunk of IMS_PER_BATCH / W images of each global batch. So the
ranks' step-k batches together are the 1-process step-k batch, and a run resumed at start_iter
gets the same batches (and, via per-sample seeds, the same augmentation) as an unbroken one.
Testing: images in order, split across ranks by DistributedSampler (padded to equal shares).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler
from yacs.config import CfgNode

from rcnn import compat
from rcnn.config.loader import ConfigError
from rcnn.config.paths_catalog import DatasetCatalog
from rcnn.data.buckets import Canvas, bucket_canvases, bucket_count
from rcnn.data.collate import BatchCollator
from rcnn.data.datasets import COCODataset, TxtListDataset
from rcnn.data.datasets.concat import ConcatDataset
from rcnn.data.samplers import (
    DistributedSampler,
    GroupedBatchSampler,
    IterationBasedBatchSampler,
    RankSplitBatchSampler,
    SeededBatchSampler,
)
from rcnn.data.transforms import build_transforms

FACTORIES: dict[str, Callable[..., Dataset]] = {
    "COCODataset": COCODataset,
    "TxtListDataset": TxtListDataset,
}
# Datasets that can carry instance masks (the text list has boxes only).
WITH_MASKS = ("COCODataset",)


def make_dataset(
    name_or_spec: str | dict[str, Any],
    transforms: Callable | None = None,
    is_train: bool = True,
    on_bad_data: str = "reject",
    with_masks: bool = False,
    box_policy: str = "clip",
    allow_absolute_paths: bool = False,
) -> Dataset:
    """A dataset from a catalog name or a spec {"factory": ..., "args": {...}} like the
    catalog's answer; training drops images without annotations, as maskrcnn-benchmark."""
    spec = DatasetCatalog.get(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    factory = spec.get("factory")
    if factory not in FACTORIES:
        raise ValueError(f"unknown dataset factory {factory!r}; known: {', '.join(FACTORIES)}")
    args = dict(spec.get("args", {}))
    args.update(
        remove_images_without_annotations=is_train,
        transforms=transforms,
        on_bad_data=on_bad_data,
        box_policy=box_policy,
        allow_absolute_paths=allow_absolute_paths,
    )
    if factory in WITH_MASKS:
        args["with_masks"] = with_masks
    return FACTORIES[factory](**args)


def build_datasets(cfg: CfgNode, is_train: bool) -> list[Dataset]:
    names = cfg.DATASETS.TRAIN if is_train else cfg.DATASETS.TEST
    if not names:
        key = "DATASETS.TRAIN" if is_train else "DATASETS.TEST"
        raise ValueError(f"{key} is empty: name at least one dataset (see the paths catalog)")
    transforms = build_transforms(cfg, is_train)
    data = cfg.DATASETS
    datasets = [
        make_dataset(
            name,
            transforms,
            is_train,
            data.ON_BAD_DATA,
            cfg.MODEL.MASK_ON,
            data.BOXES_OUTSIDE_IMAGE,
            data.ALLOW_ABSOLUTE_PATHS,
        )
        for name in names
    ]
    for name, dataset in zip(names, datasets, strict=True):
        _check_classes(cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES, name, dataset)
    return datasets


def _check_classes(num_classes: int, name: str, dataset: Dataset) -> None:
    """The box head needs a logit per category of the data, plus background."""
    categories = getattr(dataset, "categories", None)
    if categories is not None and len(categories) + 1 > num_classes:
        raise ConfigError(
            f"MODEL.ROI_BOX_HEAD.NUM_CLASSES {num_classes} is too small for dataset {name}: "
            f"it has {len(categories)} categories, so set it to at least {len(categories) + 1}"
        )


def aspect_group_ids(dataset: Dataset) -> list[int]:
    """0 for landscape (h / w < 1), 1 for portrait or square, as maskrcnn-benchmark's bins=[1]."""
    ratios = []
    for i in range(len(dataset)):
        info = dataset.get_img_info(i)
        ratios.append(float(info["height"]) / float(info["width"]))
    return [bisect.bisect_right([1.0], r) for r in ratios]


def _check_splits(key: str, global_batch: int, num_replicas: int) -> None:
    """Every process must get the same number of images per step."""
    if global_batch % num_replicas:
        raise ConfigError(
            f"{key} ({global_batch}) must be divisible by the number of processes ({num_replicas})"
        )


def make_train_batch_sampler(
    dataset: Dataset,
    global_batch: int,
    num_iterations: int,
    start_iter: int = 0,
    seed: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
    aspect_grouping: bool = True,
) -> Sampler:
    """This rank's batches of (index, seed key) for steps start_iter..num_iterations-1."""
    _check_splits("SOLVER.IMS_PER_BATCH", global_batch, num_replicas)
    order = DistributedSampler(len(dataset), 1, 0, shuffle=True, seed=seed)
    if aspect_grouping:
        batches = GroupedBatchSampler(order, aspect_group_ids(dataset), global_batch, True)
    else:
        batches = BatchSampler(order, global_batch, drop_last=True)
    steps = IterationBasedBatchSampler(batches, num_iterations, start_iter)
    return RankSplitBatchSampler(SeededBatchSampler(steps, seed), num_replicas, rank)


def make_test_batch_sampler(
    dataset: Dataset,
    global_batch: int,
    num_replicas: int = 1,
    rank: int = 0,
    aspect_grouping: bool = True,
) -> Sampler:
    _check_splits("TEST.IMS_PER_BATCH", global_batch, num_replicas)
    share = DistributedSampler(len(dataset), num_replicas, rank, shuffle=False)
    per_rank = global_batch // num_replicas
    if aspect_grouping:
        return GroupedBatchSampler(share, aspect_group_ids(dataset), per_rank, False)
    return BatchSampler(share, per_rank, drop_last=False)


def _split_canvases(cfg: CfgNode, is_train: bool, count: int) -> list[Canvas]:
    inp = cfg.INPUT
    min_size, max_size = (
        (inp.MIN_SIZE_TRAIN, inp.MAX_SIZE_TRAIN)
        if is_train
        else (inp.MIN_SIZE_TEST, inp.MAX_SIZE_TEST)
    )
    min_sizes = tuple(min_size) if isinstance(min_size, (list, tuple)) else (min_size,)
    return bucket_canvases(min_sizes, max_size, cfg.DATALOADER.SIZE_DIVISIBILITY, count)


def shape_buckets(cfg: CfgNode, is_train: bool, static_compile: bool = False) -> list[Canvas]:
    """The canvases DATALOADER.SHAPE_BUCKETS asks for at this split's INPUT sizes (rcnn.data.
    buckets). For a static-shape compile they must fit torch._dynamo's recompile limit, with the
    other split's too when training evaluates (SOLVER.TEST_PERIOD: evaluation's graphs share
    the backbone's cache): auto takes the most long sides that fit, an explicit count that does
    not fit is refused here, before work, since the canvases past the limit would run eager."""
    setting = cfg.DATALOADER.SHAPE_BUCKETS
    if not static_compile:
        return _split_canvases(cfg, is_train, bucket_count(setting, False))
    # both splits alike, so that training's loader and its evaluation's pick the same count
    splits = [is_train, not is_train] if cfg.SOLVER.TEST_PERIOD > 0 else [is_train]
    name, limit = compat.recompile_limit()
    counts = [setting] if setting >= 0 else range(bucket_count(setting, True), 0, -1)
    for count in counts:
        per_split = [_split_canvases(cfg, split, count) for split in splits]
        total = sum(map(len, per_split))
        if total <= limit:
            return per_split[0]
    both = " (training and evaluation)" if len(splits) > 1 else ""
    raise ConfigError(
        f"DATALOADER.SHAPE_BUCKETS {setting}: {total} shape buckets{both} exceed "
        f"torch._dynamo.config.{name} ({limit}), so the compiled backbone would run the rest "
        "eager; set DATALOADER.SHAPE_BUCKETS lower (-1 picks what fits) or MODEL.COMPILE_SHAPES "
        "dynamic"
    )


def _world(is_distributed: bool) -> tuple[int, int]:
    if is_distributed and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def make_data_loader(
    cfg: CfgNode,
    is_train: bool = True,
    is_distributed: bool = False,
    start_iter: int = 0,
    seed: int | None = None,
    datasets: Sequence[Dataset] | None = None,
    static_compile: bool = False,
) -> DataLoader | list[DataLoader]:
    """maskrcnn-benchmark's make_data_loader: one loader over DATASETS.TRAIN (concatenated), or
    one loader per DATASETS.TEST name. `seed` defaults to cfg.SEED; `datasets` replaces the
    catalog lookup (already built sets); `static_compile`: the model's backbone is compiled for
    static shapes (shape buckets on unless DATALOADER.SHAPE_BUCKETS says 0)."""
    num_replicas, rank = _world(is_distributed)
    seed = cfg.SEED if seed is None else seed
    buckets = shape_buckets(cfg, is_train, static_compile)
    datasets = list(datasets) if datasets is not None else build_datasets(cfg, is_train)
    collator = BatchCollator(cfg.DATALOADER.SIZE_DIVISIBILITY, buckets)
    grouping = cfg.DATALOADER.ASPECT_RATIO_GROUPING

    def loader(dataset: Dataset, batch_sampler: Sampler) -> DataLoader:
        return DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            collate_fn=collator,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
            # a test set read pass after pass (repeats, --iters past one pass) must not start
            # its workers again inside a measured window
            persistent_workers=cfg.DATALOADER.NUM_WORKERS > 0 and not is_train,
            # its own generator: starting an iterator must not draw from the global RNG the
            # model's samplers use, or a resumed run would diverge from an unbroken one
            generator=torch.Generator().manual_seed(seed),
        )

    if is_train:
        dataset = datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)
        sampler = make_train_batch_sampler(
            dataset,
            cfg.SOLVER.IMS_PER_BATCH,
            cfg.SOLVER.MAX_ITER,
            start_iter,
            seed,
            num_replicas,
            rank,
            grouping,
        )
        return loader(dataset, sampler)
    return [
        loader(d, make_test_batch_sampler(d, cfg.TEST.IMS_PER_BATCH, num_replicas, rank, grouping))
        for d in datasets
    ]
