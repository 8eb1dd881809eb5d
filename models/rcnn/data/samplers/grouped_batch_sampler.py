"""GroupedBatchSampler: batches whose images share a group (aspect ratio: landscape/portrait)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler


class GroupedBatchSampler(Sampler[list[int]]):
    """Walks `sampler` in order, filling one buffer per group; a full buffer is a batch.
    Leftovers (fewer than batch_size) come last, by first appearance, unless `drop_uneven`."""

    def __init__(
        self,
        sampler: Sampler[int],
        group_ids: Sequence[int],
        batch_size: int,
        drop_uneven: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.sampler = sampler
        self.group_ids = list(group_ids)
        self.batch_size = batch_size
        self.drop_uneven = drop_uneven

    def __iter__(self) -> Iterator[list[int]]:
        buffers: dict[int, list[int]] = defaultdict(list)
        for idx in self.sampler:
            group = self.group_ids[idx]
            buffers[group].append(idx)
            if len(buffers[group]) == self.batch_size:
                yield buffers.pop(group)
        if not self.drop_uneven:
            yield from sorted((b for b in buffers.values() if b), key=lambda b: b[0])

    def __len__(self) -> int:
        counts: dict[int, int] = defaultdict(int)
        for idx in self.sampler:
            counts[self.group_ids[idx]] += 1
        full = sum(c // self.batch_size for c in counts.values())
        uneven = sum(1 for c in counts.values() if c % self.batch_size)
        return full if self.drop_uneven else full + uneven
