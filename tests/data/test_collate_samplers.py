"""Collate padding, sampler determinism, the 2-rank union property and resume by start_iter."""

from __future__ import annotations

import itertools

import pytest
import torch

from rcnn.config import get_default_config
from rcnn.data import make_data_loader, make_dataset
from rcnn.data.build import make_test_batch_sampler, make_train_batch_sampler
from rcnn.data.collate import BatchCollator
from rcnn.data.samplers import (
    DistributedSampler,
    GroupedBatchSampler,
    IterationBasedBatchSampler,
)
from rcnn.data.synthetic import register_synthetic
from rcnn.structures.bounding_box import BoxList


class Sizes:
    """A stand-in dataset that only knows image sizes (all the samplers look at)."""

    def __init__(self, n: int) -> None:
        self.infos = [{"width": 100, "height": 60 if i % 3 else 140} for i in range(n)]

    def __len__(self) -> int:
        return len(self.infos)

    def get_img_info(self, i: int) -> dict:
        return self.infos[i]


def test_collate_pads_to_size_divisibility() -> None:
    a, b = torch.ones(3, 50, 70), torch.full((3, 60, 40), 2.0)
    t = BoxList(torch.zeros(0, 4), (70, 50))
    images, targets, ids = BatchCollator(32)([(a, t, 4), (b, t, 9)])
    assert images.tensors.shape == (2, 3, 64, 96)
    assert images.image_sizes == [(50, 70), (60, 40)]
    assert ids == (4, 9) and len(targets) == 2
    assert images.tensors[0, :, :50, :70].eq(1).all() and images.tensors[0, :, 50:].eq(0).all()
    assert images.tensors[1, :, 60:, :].eq(0).all() and images.tensors[1, :, :, 40:].eq(0).all()


def test_distributed_sampler_seeded_padded_disjoint() -> None:
    ranks = [list(DistributedSampler(7, 2, r, shuffle=True, seed=3)) for r in range(2)]
    assert [len(r) for r in ranks] == [4, 4]
    assert set(ranks[0] + ranks[1]) == set(range(7))  # one index repeats as padding
    assert ranks == [list(DistributedSampler(7, 2, r, shuffle=True, seed=3)) for r in range(2)]
    other_seed = list(DistributedSampler(7, 1, 0, shuffle=True, seed=4))
    sampler = DistributedSampler(7, 1, 0, shuffle=True, seed=3)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first and other_seed != first
    assert list(DistributedSampler(5, 2, 1, shuffle=False)) == [1, 3, 0]


def test_grouped_batches_share_aspect_group() -> None:
    groups = [0, 1, 0, 0, 1, 1, 0, 1, 0]
    batches = list(GroupedBatchSampler(range(9), groups, 2, drop_uneven=False))
    assert batches == [[0, 2], [1, 4], [3, 6], [5, 7], [8]]
    assert list(GroupedBatchSampler(range(9), groups, 2, drop_uneven=True)) == batches[:4]
    assert len(GroupedBatchSampler(range(9), groups, 2, drop_uneven=False)) == 5


def test_iteration_based_resume_and_epochs() -> None:
    def steps(start: int) -> list[list[int]]:
        sampler = DistributedSampler(10, 1, 0, shuffle=True, seed=1)
        batches = torch.utils.data.BatchSampler(sampler, 4, drop_last=True)
        return list(IterationBasedBatchSampler(batches, 7, start_iter=start))

    full = steps(0)
    assert len(full) == 7 and all(len(b) == 4 for b in full)
    assert steps(3) == full[3:] and steps(7) == []
    assert sorted(full[0] + full[1]) != sorted(full[2] + full[3])  # epoch 1 reshuffles
    with pytest.raises(ValueError, match="no batch"):
        list(IterationBasedBatchSampler(torch.utils.data.BatchSampler(range(3), 4, True), 2))


@pytest.mark.parametrize("grouping", [True, False])
def test_two_ranks_together_equal_one_process(grouping: bool) -> None:
    data = Sizes(23)
    one = list(make_train_batch_sampler(data, 8, 12, seed=5, aspect_grouping=grouping))
    ranks = [
        list(
            make_train_batch_sampler(
                data, 8, 12, seed=5, num_replicas=2, rank=r, aspect_grouping=grouping
            )
        )
        for r in range(2)
    ]
    assert len(one) == 12 and all(len(b) == 8 for b in one)
    for step, (whole, r0, r1) in enumerate(zip(one, *ranks, strict=True)):
        assert len(r0) == len(r1) == 4
        assert r0 + r1 == whole, step  # same images and the same per-sample seed keys
        if grouping:
            assert len({data.get_img_info(i)["height"] > 100 for i, _ in whole}) == 1
    resumed = list(
        make_train_batch_sampler(
            data, 8, 12, start_iter=5, seed=5, num_replicas=2, rank=1, aspect_grouping=grouping
        )
    )
    assert resumed == ranks[1][5:]
    with pytest.raises(ValueError, match="divisible"):
        make_train_batch_sampler(data, 6, 3, num_replicas=4, rank=0)


def test_test_sampler_covers_every_image_once() -> None:
    data = Sizes(11)
    ranks = [list(itertools.chain(*make_test_batch_sampler(data, 4, 2, r))) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 6
    assert set(ranks[0]) | set(ranks[1]) == set(range(11))


def _cfg(train: str, val: str, **overrides):
    cfg = get_default_config()
    cfg.merge_from_list(
        [
            "DATASETS.TRAIN",
            (train,),
            "DATASETS.TEST",
            (val,),
            "INPUT.MIN_SIZE_TRAIN",
            (64, 80),
            "INPUT.MAX_SIZE_TRAIN",
            160,
            "INPUT.MIN_SIZE_TEST",
            64,
            "INPUT.MAX_SIZE_TEST",
            160,
            "DATALOADER.NUM_WORKERS",
            0,
            "DATALOADER.SIZE_DIVISIBILITY",
            32,
            "SOLVER.IMS_PER_BATCH",
            4,
            "SOLVER.MAX_ITER",
            6,
            "SEED",
            11,
        ]
    )
    cfg.merge_from_list([v for kv in overrides.items() for v in kv])
    return cfg


def test_train_loader_resume_gives_the_same_batches(make_set) -> None:
    train, val = register_synthetic(make_set(train=10, val=3, width=96, height=80))
    cfg = _cfg(train, val)

    def steps(start: int, workers: int) -> list:
        cfg.DATALOADER.NUM_WORKERS = workers
        return [
            (ids, images.tensors, [t.bbox for t in targets])
            for images, targets, ids in make_data_loader(cfg, is_train=True, start_iter=start)
        ]

    full = steps(0, 0)
    assert len(full) == 6
    for ids, tensors, _ in full:
        assert len(ids) == 4 and tensors.shape[-1] % 32 == 0 and tensors.shape[-2] % 32 == 0
    resumed = steps(4, 1)
    assert len(resumed) == 2
    for (ids_a, img_a, box_a), (ids_b, img_b, box_b) in zip(full[4:], resumed, strict=True):
        assert ids_a == ids_b and torch.equal(img_a, img_b)  # same flips and scales too
        assert all(torch.equal(a, b) for a, b in zip(box_a, box_b, strict=True))
    sizes = {tuple(t.shape[-2:]) for _, t, _ in full}
    assert sizes <= {(64, 96), (96, 96)}  # 80x96 images at short side 64 or 80, padded to 32


def test_test_loader_per_dataset(make_set) -> None:
    train, val = register_synthetic(make_set(train=2, val=5, width=96, height=80))
    loaders = make_data_loader(_cfg(train, val, **{"TEST.IMS_PER_BATCH": 2}), is_train=False)
    assert len(loaders) == 1
    batches = list(loaders[0])
    assert [len(ids) for _, _, ids in batches] == [2, 2, 1]
    assert sorted(i for _, _, ids in batches for i in ids) == [0, 1, 2, 3, 4]
    assert batches[0][0].tensors.shape == (2, 3, 64, 96)
    assert len(make_dataset(val, is_train=False)) == 5


def test_the_test_loader_keeps_its_workers_from_pass_to_pass(make_set) -> None:
    train, val = register_synthetic(make_set(train=2, val=3, width=96, height=80))
    cfg = _cfg(train, val, **{"TEST.IMS_PER_BATCH": 2, "DATALOADER.NUM_WORKERS": 1})
    loader = make_data_loader(cfg, is_train=False)[0]
    first = iter(loader)
    workers = [w.pid for w in first._workers]
    assert len(list(first)) == 2
    second = iter(loader)  # the next pass: the same processes, none started
    assert second is first and [w.pid for w in second._workers] == workers
    assert all(w.is_alive() for w in second._workers) and len(list(second)) == 2


def test_a_batch_that_does_not_split_over_processes_is_a_config_error():
    from rcnn.config import ConfigError
    from rcnn.data.build import make_test_batch_sampler, make_train_batch_sampler

    with pytest.raises(ConfigError, match=r"SOLVER.IMS_PER_BATCH \(3\) must be divisible .* \(2\)"):
        make_train_batch_sampler(list(range(8)), 3, 10, num_replicas=2, aspect_grouping=False)
    with pytest.raises(ConfigError, match=r"TEST.IMS_PER_BATCH \(5\) must be divisible"):
        make_test_batch_sampler(list(range(8)), 5, num_replicas=2, aspect_grouping=False)
