"""Paths a dataset names must stay inside its data root, and text files must be UTF-8.

A COCO `file_name` or a list entry that is absolute, climbs with `..`, or passes through a
symlink leading out of the root is refused unless DATASETS.ALLOW_ABSOLUTE_PATHS is set.
"""

from __future__ import annotations

import os

from rcnn.data.datasets.bad_data import DataError


def image_path(root: str, name: str, allow_absolute: bool) -> tuple[str, str]:
    """(path, "") for an image `name` of `root`, or (path, why it is refused)."""
    if not isinstance(name, str) or not name:
        return f"{root}/{name!r}", f"file_name {name!r} is not a file name"
    path = os.path.join(root, name)
    if allow_absolute:
        return path, ""
    if os.path.isabs(name):
        return path, (
            "absolute file name outside the data root; set DATASETS.ALLOW_ABSOLUTE_PATHS True "
            "to read it"
        )
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        return path, (
            f"resolves to {real}, outside the data root {real_root} (via '..' or a symlink); "
            "set DATASETS.ALLOW_ABSOLUTE_PATHS True to read it"
        )
    return path, ""


def read_utf8_lines(path: str, what: str) -> list[str]:
    """The lines of a text file; a byte that is not UTF-8 is a DataError naming file:line."""
    with open(path, "rb") as f:
        raw = f.read().split(b"\n")
    lines = []
    for number, line in enumerate(raw, start=1):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise DataError(
                f"{path}:{number}: {what} is not UTF-8 text (byte 0x{line[err.start]:02x} at "
                f"column {err.start + 1}); save it as UTF-8"
            ) from None
    return lines
