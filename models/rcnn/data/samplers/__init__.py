"""Samplers: seeded distributed shuffle, aspect-ratio grouping, iteration-based resume."""

from rcnn.data.samplers.distributed import DistributedSampler
from rcnn.data.samplers.grouped_batch_sampler import GroupedBatchSampler
from rcnn.data.samplers.iteration_based_batch_sampler import IterationBasedBatchSampler
from rcnn.data.samplers.rank_split import RankSplitBatchSampler, SampleKey, SeededBatchSampler

__all__ = [
    "DistributedSampler",
    "GroupedBatchSampler",
    "IterationBasedBatchSampler",
    "RankSplitBatchSampler",
    "SampleKey",
    "SeededBatchSampler",
]
