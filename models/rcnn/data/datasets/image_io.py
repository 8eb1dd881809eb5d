"""Image files: a cheap up-front header check, and a load that fails as a DataError."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from rcnn.data.datasets.bad_data import DataError

# probe_image refuses such images by name, so PIL's console warning would only repeat it
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# Header reads are I/O bound (network file systems): threads overlap the waits.
PROBE_THREADS = 8
# 16-bit grayscale (PNG) that PIL's convert("RGB") would clip to white: scaled down instead
WIDE_GRAY_MODES = ("I;16", "I;16B", "I;16L", "I")
DECODABLE_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB")
DECODABLE_MODES += WIDE_GRAY_MODES


def _wide_gray_to_rgb(img: Image.Image, image_id: int | str, path: str) -> Image.Image:
    """16-bit gray to 8-bit RGB by dropping the low byte (0..65535 -> 0..255)."""
    values = np.asarray(img, dtype=np.int64)
    if values.min(initial=0) < 0 or values.max(initial=0) > 0xFFFF:
        raise DataError(f"image {image_id} ({path}): pixel values beyond 16 bits; convert it")
    return Image.fromarray((values >> 8).astype(np.uint8), "L").convert("RGB")


def probe_image(path: str) -> tuple[int, int] | str:
    """(width, height) from the file's header without decoding pixels, or why it cannot be read."""
    if not os.path.isfile(path):
        return "missing image file"
    try:
        with Image.open(path) as img:
            size, mode = img.size, img.mode
    except Image.DecompressionBombError as err:
        return f"refused: {err}"
    except (OSError, SyntaxError, ValueError) as err:
        return f"unreadable image file ({type(err).__name__}: {err})"
    limit = Image.MAX_IMAGE_PIXELS
    if limit and size[0] * size[1] > limit:
        return (
            f"refused: {size[0]}x{size[1]} pixels is above the decompression-bomb limit of "
            f"{limit} (PIL.Image.MAX_IMAGE_PIXELS)"
        )
    if mode not in DECODABLE_MODES:
        return f"refused: pixel mode {mode!r} cannot be converted to 8-bit RGB faithfully"
    return size


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
            if img.mode in WIDE_GRAY_MODES:
                return _wide_gray_to_rgb(img, image_id, path)
            return img.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(
            f"image {image_id} ({path}): cannot decode ({type(err).__name__}: {err})"
        ) from None
