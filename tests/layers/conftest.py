"""Every layers test starts and ends with no cached kernel choice and RCNN_OPS unset."""

from collections.abc import Callable

import pytest
import torch

from rcnn.layers import dispatch


@pytest.fixture(autouse=True)
def fresh_dispatch(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(dispatch.ENV, raising=False)
    dispatch.reset()
    yield
    dispatch.reset()


@pytest.fixture(autouse=True)
def one_thread():
    # These tensors are tiny: on a shared 2-core host, intra-op threads only add contention.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def ops_mode(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Set RCNN_OPS for the rest of the test."""

    def set_mode(value: str) -> None:
        monkeypatch.setenv(dispatch.ENV, value)
        dispatch.reset()

    return set_mode
