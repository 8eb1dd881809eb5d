"""Image files: a cheap up-front header check, and a load that fails as a DataError."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from rcnn.data.datasets.bad_data import DataError

# Header reads are I/O bound (network file systems): threads overlap the waits.
PROBE_THREADS = 8


def probe_image(path: str) -> tuple[int, int] | str:
    """(width, height) from the file's header without decoding pixels, or why it cannot be read."""
    if not os.path.isfile(path):
        return "missing image file"
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, ValueError) as err:
        return f"unreadable image file ({type(err).__name__}: {err})"


def probe_images(paths: Sequence[str]) -> list[tuple[int, int] | str]:
    """probe_image over many files, in the order given."""
    if len(paths) < 2 * PROBE_THREADS:
        return [probe_image(p) for p in paths]
    with ThreadPoolExecutor(PROBE_THREADS) as pool:
        return list(pool.map(probe_image, paths, chunksize=64))


def load_rgb(path: str, image_id: int | str) -> Image.Image:
    """Decode an image to RGB; a truncated or corrupt file raises DataError naming id and path."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"image {image_id} ({path}): cannot decode ({type(err).__name__}: {err})"
        ) from None
