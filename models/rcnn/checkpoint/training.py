"""Save and resume training: model, optimizer, scheduler, grad scaler, iteration, config, extra.

Files are written to a temp file in the same folder and renamed, so a killed run leaves the
previous checkpoint intact. ``last_checkpoint`` is a text file naming the newest one, as in
maskrcnn-benchmark. Everything saved loads with ``torch.load(weights_only=True)``; ``extra``
must hold only tensors, numbers, strings, lists and dicts (see ``rcnn.checkpoint.rng``).
"""

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from yacs.config import CfgNode

from rcnn.checkpoint.errors import CheckpointError
from rcnn.checkpoint.formats import read_torch_file, state_dict_of
from rcnn.checkpoint.matching import LoadReport, load_state_dict_into
from rcnn.utils.io import TEMP_SUFFIX, atomic_write

LAST_CHECKPOINT = "last_checkpoint"


@dataclass
class Resumed:
    """What ``load_checkpoint`` found besides the model weights."""

    iteration: int
    config: str | None
    extra: dict[str, Any]
    report: LoadReport
    # which of optimizer / scheduler / scaler were restored
    restored: list[str] = field(default_factory=list)


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    iteration: int = 0,
    config: CfgNode | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Write a training checkpoint atomically and point ``last_checkpoint`` at it."""
    path = os.fspath(path)
    data = {
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "iteration": int(iteration),
        "config": config.dump() if config is not None else None,
        "extra": dict(extra or {}),
    }
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    atomic_write(path, lambda f: torch.save(data, f))
    name = os.path.basename(path)
    atomic_write(os.path.join(folder, LAST_CHECKPOINT), lambda f: f.write(name.encode()))
    return path


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    strict: bool = True,
) -> Resumed:
    """Restore what ``save_checkpoint`` wrote (or a maskrcnn-benchmark checkpoint) in place."""
    source = os.fspath(path)
    data = read_torch_file(source)
    report = load_state_dict_into(
        _unwrap(model), state_dict_of(data, source), strict=strict, source=source
    )
    data = data if isinstance(data, dict) and "model" in data else {}
    restored = []
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if target is not None and data.get(name) is not None:
            try:
                target.load_state_dict(data[name])
            except (ValueError, KeyError, RuntimeError, TypeError) as e:
                raise CheckpointError(f"{source}: cannot restore the {name}: {e}") from None
            restored.append(name)
    return Resumed(
        iteration=int(data.get("iteration", 0)),
        config=data.get("config"),
        extra=data.get("extra") or {},
        report=report,
        restored=restored,
    )


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The checkpoint ``output_dir/last_checkpoint`` names, or None when there is none yet."""
    pointer = os.path.join(os.fspath(output_dir), LAST_CHECKPOINT)
    if not os.path.isfile(pointer):
        return None
    with open(pointer, encoding="utf-8") as f:
        name = f.read().strip()
    if not name:
        return None
    # maskrcnn-benchmark wrote absolute paths; we write names relative to the folder
    path = name if os.path.isabs(name) else os.path.join(os.fspath(output_dir), name)
    if not os.path.isfile(path):
        raise CheckpointError(f"{pointer}: names {name}, which does not exist")
    return path


def remove_stale_temp_files(output_dir: str | os.PathLike) -> list[str]:
    """Delete the temp files ``atomic_write`` leaves when killed mid-write; returns them.

    Call at the start of a run, before anything in ``output_dir`` is being written.
    """
    folder = os.fspath(output_dir)
    if not os.path.isdir(folder):
        return []
    stale = [
        os.path.join(folder, name)
        for name in sorted(os.listdir(folder))
        if name.startswith(".") and name.endswith(TEMP_SUFFIX)
    ]
    for path in stale:
        os.remove(path)
    return stale


def _unwrap(model: nn.Module) -> nn.Module:
    # DistributedDataParallel / DataParallel keep the real model in .module
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model
