"""One logger per run: rank 0 writes to the console and to the run's log file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def setup_logger(
    name: str = "rcnn", save_dir: str | Path | None = None, rank: int = 0
) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    if rank > 0:  # other ranks stay quiet, as in maskrcnn-benchmark
        logger.addHandler(logging.NullHandler())
        return logger
    fmt = logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s")
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(fmt)
    logger.addHandler(console)
    if save_dir:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(Path(save_dir) / "log.txt")
        file.setFormatter(fmt)
        logger.addHandler(file)
    return logger
