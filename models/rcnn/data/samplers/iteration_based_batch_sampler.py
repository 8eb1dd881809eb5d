"""IterationBasedBatchSampler: a fixed number of batches, epoch after epoch, from any start."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Sampler


class IterationBasedBatchSampler(Sampler[list[int]]):
    """Yields batches of `batch_sampler` for iterations start_iter..num_iterations-1, moving to
    the next epoch (`set_epoch` on its sampler) when one runs out; a resumed run at start_iter
    gets exactly the batches the uninterrupted run got from that iteration on."""

    def __init__(
        self, batch_sampler: Sampler[list[int]], num_iterations: int, start_iter: int = 0
    ) -> None:
        self.batch_sampler = batch_sampler
        self.num_iterations = num_iterations
        self.start_iter = start_iter

    def _set_epoch(self, epoch: int) -> None:
        sampler = getattr(self.batch_sampler, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        iteration, epoch = 0, 0
        while iteration < self.num_iterations:
            self._set_epoch(epoch)
            yielded = False
            for batch in self.batch_sampler:
                yielded = True
                if iteration >= self.start_iter:
                    yield batch
                iteration += 1
                if iteration >= self.num_iterations:
                    return
            if not yielded:
                raise ValueError("the batch sampler yields no batch: fewer images than a batch?")
            epoch += 1

    def __len__(self) -> int:
        return max(self.num_iterations - self.start_iter, 0)
