"""The error boundary of every entry point: what a user can fix is one line naming the file,
key, image or card; anything else is one line plus the file holding the full traceback."""

import os
import tempfile
import time
import traceback

from rcnn.checkpoint import CheckpointError
from rcnn.config import ConfigError, DatasetCatalogError
from rcnn.data import DataError
from rcnn.device import DeviceError
from rcnn.device.reasons import missing_operator, reason
from rcnn.layers.dispatch import KernelUnavailableError
from rcnn.utils.signals import StopSignal

USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    DatasetCatalogError,
    DataError,
    DeviceError,
    CheckpointError,
    KernelUnavailableError,
)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the state reached was saved; the message says where."""


def one_line(err: BaseException) -> str:
    """The error's message on one line (multi-line messages joined with "; "); torch's
    many-line dump for a kernel the device lacks as `<operator> missing on the <x> backend`."""
    if missing_operator(err) is not None:
        return reason(err).partition(": ")[2]
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines) or type(err).__name__


def interrupted_line(err: BaseException) -> str:
    """'interrupted (Ctrl-C|SIGTERM)' plus what the run kept, for any KeyboardInterrupt."""
    how, cause = "Ctrl-C", err
    while cause is not None:  # the signal may sit under the exception that reports a save
        if isinstance(cause, StopSignal):
            how = cause.signal_name
            break
        cause = cause.__context__
    detail = "" if isinstance(err, StopSignal) or not str(err) else f": {one_line(err)}"
    return f"interrupted ({how}){detail}"


def write_traceback(err: BaseException, tool: str, folder: str | None = None) -> str:
    """Write the full traceback of `err` to a file in `folder` (else the temp folder); its path."""
    folder = folder or tempfile.gettempdir()
    try:
        os.makedirs(folder, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = os.path.join(folder, f"{tool}-traceback-{stamp}-{os.getpid()}.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(traceback.format_exception(err)))
    except OSError:  # an unwritable folder must not turn one error into two tracebacks
        if folder != tempfile.gettempdir():
            return write_traceback(err, tool, None)
        raise
    return path


def unexpected_message(err: BaseException, tool: str, folder: str | None = None) -> str:
    """One line for an error nobody anticipated, pointing at its saved traceback."""
    path = write_traceback(err, tool, folder)
    return f"unexpected error: {type(err).__name__}: {one_line(err)} (full traceback in {path})"
