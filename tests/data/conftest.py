"""Small synthetic COCO-format sets on disk for the data tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rcnn.data.synthetic import SyntheticSpec, generate


@pytest.fixture
def make_set(tmp_path: Path) -> Callable[..., Path]:
    """make_set(train=6, val=3, width=96, height=80, seed=0) -> root of a fresh set."""

    def make(
        train: int = 6, val: int = 3, width: int = 96, height: int = 80, seed: int = 0
    ) -> Path:
        root = tmp_path / f"synth_{seed}_{train}_{val}_{width}x{height}"
        generate(SyntheticSpec(train, val, width=width, height=height, seed=seed), root)
        return root

    return make
