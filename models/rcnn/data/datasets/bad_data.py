"""Bad data: what went wrong with which image, and the reject-or-skip policy over all of it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

POLICIES = ("reject", "skip")
MAX_LISTED = 10
_WORKER_PREFIX = "Caught DataError "


class DataError(ValueError):
    """Bad input data: names the image id and path and says what is wrong.

    Built from a DataLoader worker's re-raise message (`Caught DataError in DataLoader worker
    process 0. Original Traceback ...`), it keeps only the original message, so the main process
    prints the same clear line as a single-process run; the worker traceback stays in
    `worker_traceback`.
    """

    def __init__(self, message: str) -> None:
        self.worker_traceback = ""
        if message.startswith(_WORKER_PREFIX):
            self.worker_traceback = message
            marker = f"{DataError.__module__}.{DataError.__qualname__}: "
            if marker in message:
                message = message.rsplit(marker, 1)[1].rstrip("\n")
        super().__init__(message)


@dataclass(frozen=True)
class BadItem:
    """One bad image or annotation: `image_id` and `path` of its image, and the reason."""

    image_id: int | str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"image {self.image_id} ({self.path}): {self.reason}"


def settle_bad_items(bad: Sequence[BadItem], on_bad_data: str, source: str) -> None:
    """Apply the policy: "reject" raises one DataError listing the first offenders and the
    total; "skip" logs a counted warning (the caller has already dropped the items)."""
    if on_bad_data not in POLICIES:
        raise ValueError(f"on_bad_data must be one of {POLICIES}, got {on_bad_data!r}")
    if not bad:
        return
    # one line: the message is what an entry point prints, and a log line per event greps well
    listed = "; ".join(str(item) for item in bad[:MAX_LISTED])
    more = f"; ... and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
    if on_bad_data == "reject":
        raise DataError(
            f"{len(bad)} bad item(s) in {source}: {listed}{more}. "
            "Fix or remove them, or set DATASETS.ON_BAD_DATA skip to drop them with a warning."
        )
    logger.warning("skipped %d bad item(s) in %s: %s%s", len(bad), source, listed, more)
