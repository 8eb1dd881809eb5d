"""rcnn.utils.signals: SIGINT and SIGTERM become KeyboardInterrupt inside the block only."""

from __future__ import annotations

import os
import signal

import pytest

from rcnn.utils.signals import StopSignal, stop_signals_interrupt


def test_sigterm_raises_stop_signal_and_handlers_come_back() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    expected = pytest.raises(StopSignal, match="interrupted by SIGTERM")
    with expected as caught, stop_signals_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0)  # let the handler run here, not later
    assert caught.value.signum == signal.SIGTERM
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_ignored_sigint_becomes_a_plain_keyboard_interrupt() -> None:
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt) as caught, stop_signals_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            signal.sigtimedwait([], 0)
        assert not isinstance(caught.value, StopSignal)  # Ctrl-C reached the whole group
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, saved)
