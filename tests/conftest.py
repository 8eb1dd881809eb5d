"""Every test gets its own temp folder: what the code under test (and the processes it starts)
writes to the system temp folder, such as an entry point's traceback file, lands under pytest's
base temp, beside the test's tmp_path, not in /tmp."""

from __future__ import annotations

import getpass
import os
import re
import tempfile
from pathlib import Path

import pytest

# The compile tests share inductor's on-disk kernel cache at its usual place; it must not move
# with each test's temp folder, or every test would compile its C++ kernels from scratch.
_user = re.sub(r'[\\/:*?"<>|]', "_", getpass.getuser())  # as torch names it
os.environ.setdefault(
    "TORCHINDUCTOR_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"torchinductor_{_user}")
)


@pytest.fixture(autouse=True)
def system_temp_folder(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """The test's system temp folder: tempfile's (this process) and TMPDIR (its children)."""
    # a sibling of tmp_path, not inside it: some tests list tmp_path and expect only their files
    name = re.sub(r"\W", "_", request.node.name)[:30]
    folder = tmp_path_factory.mktemp(f"{name}_systemp")
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture(autouse=True)
def tensor_methods_left_alone():
    """A test leaves torch.Tensor as it found it: the conduct counter patches its read methods
    while a window is open, and one left behind breaks every later test in the process."""
    import torch

    before = dict(vars(torch.Tensor))
    before.pop("__slotnames__", None)  # copyreg's cache, set by the first copy of a tensor
    yield
    changed = sorted(
        k
        for k in before.keys() | (vars(torch.Tensor).keys() - {"__slotnames__"})
        if vars(torch.Tensor).get(k) is not before.get(k)
    )
    assert changed == [], f"torch.Tensor methods left patched: {changed}"
