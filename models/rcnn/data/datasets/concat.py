"""ConcatDataset: several training sets as one, keeping get_img_info and seeded indices."""

from __future__ import annotations

import bisect
from typing import Any

import torch


class ConcatDataset(torch.utils.data.ConcatDataset):
    def _locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return which, index - start

    def __getitem__(self, index: int | tuple[int, str]) -> tuple[Any, Any, int]:
        key = None
        if isinstance(index, tuple):
            index, key = index
        which, local = self._locate(index)
        img, target, _ = self.datasets[which][local if key is None else (local, key)]
        return img, target, index

    def get_img_info(self, index: int) -> dict:
        which, local = self._locate(index)
        return self.datasets[which].get_img_info(local)
