"""Stop signals become KeyboardInterrupt, so every ending goes through the same boundary.

Python leaves SIGINT ignored when the process started with it ignored (a script launched in
the background, `nohup`, some CI runners), and SIGTERM (torchrun, Slurm, `docker stop`) kills
the process without running any handler. Either way the run would leave no record and no
checkpoint; here both raise KeyboardInterrupt instead.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignal(KeyboardInterrupt):
    """A stop signal other than the terminal's Ctrl-C. Unlike Ctrl-C it reached this process
    only, so a parent forwards `signum` to the children it started."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal_name}")


def _interrupt(signum: int, frame) -> None:
    raise StopSignal(signum)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise KeyboardInterrupt; the old handlers after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; a worker thread keeps what it has
        return
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
