"""Mistakes a user can fix: entry points print these as one line, without a traceback."""

from rcnn.checkpoint import CheckpointError
from rcnn.config import ConfigError, DatasetCatalogError
from rcnn.data import DataError
from rcnn.device import DeviceError
from rcnn.layers.dispatch import KernelUnavailableError

USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    DatasetCatalogError,
    DataError,
    DeviceError,
    CheckpointError,
    KernelUnavailableError,
)
