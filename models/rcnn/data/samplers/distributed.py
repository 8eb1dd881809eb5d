"""DistributedSampler: a seeded, epoch-aware shuffle, split into equal shares per rank."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class DistributedSampler(Sampler[int]):
    """Indices 0..size-1, shuffled by (seed, epoch) when `shuffle`, padded by wrapping around
    to a multiple of `num_replicas`; rank r takes positions r, r + W, r + 2W, ...

    With num_replicas=1 it is the global shuffle that training splits per batch instead (see
    RankSplitBatchSampler), so a run on 1 or N processes sees the same images at every step.
    """

    def __init__(
        self, size: int, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.size = size
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.num_samples = math.ceil(size / num_replicas) if size else 0
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        if order:
            order += (order * math.ceil(self.total_size / len(order)))[
                : self.total_size - len(order)
            ]
        return iter(order[self.rank : self.total_size : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples
