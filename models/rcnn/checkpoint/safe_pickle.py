"""Read Detectron ``.pkl`` weight files without letting the pickle run code.

A pickle can name any importable callable; ``find_class`` here admits only the containers and
numpy array/scalar builders that weight blobs need, and refuses everything else by name.
"""

import io
import os
import pickle
from typing import Any

from rcnn.checkpoint.errors import CheckpointError

_BUILTINS = frozenset(
    {"dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float",
     "bool", "complex", "NoneType"}
)  # fmt: skip
_NUMPY = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        # pickle protocol 5 rebuilds arrays from a buffer
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }
)
_OTHER = frozenset(
    {
        # python 3 writes bytes as _codecs.encode(str, "latin1") under protocol 2
        ("_codecs", "encode"),
        ("collections", "OrderedDict"),
    }
)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain containers, numbers, strings and numpy arrays."""

    def __init__(self, file: io.BufferedIOBase, source: str):
        # Detectron files are python 2 pickles whose byte strings decode as latin1
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return super().find_class("builtins", name)
        if (module, name) in _NUMPY or (module, name) in _OTHER:
            return super().find_class(module, name)
        raise CheckpointError(
            f"{self.source}: refused to load: the pickle asks for {module}.{name}, which a "
            "weight file never needs (it could run code). Only dicts, lists, numbers, strings "
            "and numpy arrays are admitted."
        )


def load_restricted_pickle(path: str | os.PathLike) -> Any:
    """The object in ``path`` built by ``RestrictedUnpickler``; any failure is a CheckpointError."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            return RestrictedUnpickler(f, source).load()
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{source}: checkpoint file not found") from None
    except Exception as e:  # a damaged pickle can raise almost anything
        raise CheckpointError(
            f"{source}: not a readable pickle (truncated or not a Detectron .pkl): "
            f"{type(e).__name__}: {e}"
        ) from None
