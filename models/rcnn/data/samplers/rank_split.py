"""Per-sample augmentation seeds and the split of each global batch across ranks."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Sampler

from rcnn.data.samplers.iteration_based_batch_sampler import IterationBasedBatchSampler

SampleKey = tuple[int, str]  # (dataset index, seed key of its random transforms)


class SeededBatchSampler(Sampler[list[SampleKey]]):
    """Tags every index with the key "seed:iteration:index": a sample's augmentation depends on
    the run seed, the step and the image only, not on workers, ranks or where a run resumed."""

    def __init__(self, batch_sampler: IterationBasedBatchSampler, seed: int) -> None:
        self.batch_sampler = batch_sampler
        self.seed = seed

    def __iter__(self) -> Iterator[list[SampleKey]]:
        for iteration, batch in enumerate(self.batch_sampler, start=self.batch_sampler.start_iter):
            yield [(idx, f"{self.seed}:{iteration}:{idx}") for idx in batch]

    def __len__(self) -> int:
        return len(self.batch_sampler)


class RankSplitBatchSampler(Sampler[list]):
    """Rank r of W takes the r-th of W equal consecutive chunks of every global batch, so the
    ranks' step-k batches together are exactly the step-k batch of a one-process run."""

    def __init__(self, batch_sampler: Sampler[list], num_replicas: int, rank: int) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.batch_sampler = batch_sampler
        self.num_replicas = num_replicas
        self.rank = rank

    def __iter__(self) -> Iterator[list]:
        for batch in self.batch_sampler:
            if len(batch) % self.num_replicas:
                raise ValueError(
                    f"a global batch of {len(batch)} images cannot be split over "
                    f"{self.num_replicas} ranks"
                )
            share = len(batch) // self.num_replicas
            yield batch[self.rank * share : (self.rank + 1) * share]

    def __len__(self) -> int:
        return len(self.batch_sampler)
