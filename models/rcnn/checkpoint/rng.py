"""Random number generator states as tensors, ints and lists, so ``weights_only`` loads them.

Covers torch's CPU generator, python's ``random`` and numpy's global generator. Accelerator
generators belong to the device adapter; store theirs beside these in the checkpoint's extra.
"""

import random
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """The current torch (cpu), python and numpy RNG states."""
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": torch.tensor(words), "gauss": gauss},
        "numpy": {
            "kind": kind,
            # uint32 words fit int64 without loss
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned (possibly after a save and a ``weights_only`` load)."""
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(int(w) for w in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["kind"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
