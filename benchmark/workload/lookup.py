"""Which config a `--model` names: the one lookup every verb uses."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from yacs.config import CfgNode

from benchmark.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIRS = (ROOT / "models" / "configs", ROOT / "models" / "configs" / "quick")


def config_path(model: str) -> Path:
    """A config NAME from models/configs (then quick/), or a path to a .yaml file."""
    given = Path(model)
    if given.suffix in (".yaml", ".yml") or os.sep in model:
        if not given.is_file():
            raise UsageError(f"--model {model}: config file not found")
        return given
    for folder in CONFIG_DIRS:
        path = folder / f"{model}.yaml"
        if path.is_file():
            return path
    known = sorted(p.stem for folder in CONFIG_DIRS for p in folder.glob("*.yaml"))
    raise UsageError(f"--model {model}: no such config; known: {', '.join(known)}")


def config_hash(cfg: CfgNode) -> str:
    return hashlib.sha1(cfg.dump().encode()).hexdigest()


def weights_id(weights: str | None) -> str:
    """What a run's weights were, as a report cell key: "random"; a checkpoint file as its
    name and the head of its content's SHA-1 (two quickstarts write one path with different
    weights); anything else (a model-zoo name) as given."""
    if not weights or weights == "random":
        return "random"
    path = Path(weights)
    if not path.is_file():
        return weights
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{path.name} sha1:{digest.hexdigest()[:8]}"
