"""The loader benchmark's data pieces: the config's train loader at N workers, and each image's
decode and transform times apart, without changing what the dataset gives."""

from __future__ import annotations

from pathlib import Path

import torch

from rcnn.config import DatasetCatalog, load_config
from rcnn.data.benchmark import first_train_dataset, image_times, train_loader
from rcnn.data.synthetic import ann_file, img_dir

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "models/configs/quick/faster_rcnn_R_18_FPN_quick.yaml"


def _cfg(make_set):
    root = make_set(train=6, val=1)
    DatasetCatalog.register(
        "loader_bench_train", str(img_dir(root, "train")), str(ann_file(root, "train")), True
    )
    opts = ["MODEL.DEVICE", "cpu", "DATASETS.TRAIN", "('loader_bench_train',)"]
    opts += ["INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "96"]
    opts += ["SOLVER.IMS_PER_BATCH", "2", "INPUT.HORIZONTAL_FLIP_PROB_TRAIN", "0.0"]
    return load_config(str(QUICK), opts)


def test_train_loader_gives_the_batches_asked_at_each_worker_count(make_set):
    cfg = _cfg(make_set)
    before = (cfg.DATALOADER.NUM_WORKERS, cfg.SOLVER.MAX_ITER)
    for workers in (0, 1):
        loader = train_loader(cfg, workers, batches=5)
        assert loader.num_workers == workers
        batches = list(loader)
        assert len(batches) == 5
        assert all(len(images.image_sizes) == 2 for images, _, _ in batches)
        assert max(max(s) for b in batches for s in b[0].image_sizes) <= 96
    assert before == (cfg.DATALOADER.NUM_WORKERS, cfg.SOLVER.MAX_ITER)  # a copy was changed


def test_image_times_split_an_item_without_changing_it(make_set):
    cfg = _cfg(make_set)
    dataset = first_train_dataset(cfg)
    transforms, threads = dataset.transforms, torch.get_num_threads()
    times = image_times(dataset, count=8)  # more than the 6 images: cycled
    assert len(times.decode_s) == len(times.transform_s) == 8
    assert min(times.decode_s) > 0 and min(times.transform_s) > 0
    assert dataset.transforms is transforms and torch.get_num_threads() == threads
    image, target, idx = dataset[0]  # the split pieces compose to the dataset's own item
    raw_image, raw_target, _ = _without_transforms(dataset, 0)
    again, again_target = transforms(raw_image, raw_target)
    assert idx == 0 and torch.equal(image, again)
    assert torch.equal(target.bbox, again_target.bbox)


def _without_transforms(dataset, index):
    kept, dataset.transforms = dataset.transforms, None
    try:
        return dataset[index]
    finally:
        dataset.transforms = kept
