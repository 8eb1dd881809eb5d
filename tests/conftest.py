"""Every test gets its own temp folder: what the code under test (and the processes it starts)
writes to the system temp folder, such as an entry point's traceback file, lands under pytest's
base temp, beside the test's tmp_path, not in /tmp."""

from __future__ import annotations

import getpass
import os
import re
import tempfile
from inspect import getattr_static
from pathlib import Path

import pytest

# The compile tests share inductor's on-disk kernel cache at its usual place; it must not move
# with each test's temp folder, or every test would compile its C++ kernels from scratch.
_user = re.sub(r'[\\/:*?"<>|]', "_", getpass.getuser())  # as torch names it
os.environ.setdefault(
    "TORCHINDUCTOR_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"torchinductor_{_user}")
)


@pytest.fixture(autouse=True)
def tensor_methods_left_alone():
    """A test leaves torch.Tensor as it found it: the conduct counter patches its read methods
    while a window is open, and one left behind breaks every later test in the process."""
    import torch

    # what each name resolves to (a patch undone onto the class is the same method again);
    # __slotnames__ is copyreg's cache, set by the first copy of a tensor
    before = {k: getattr_static(torch.Tensor, k) for k in dir(torch.Tensor) if k != "__slotnames__"}
    yield
    changed = sorted(
        k
        for k in before.keys() | (set(dir(torch.Tensor)) - {"__slotnames__"})
        if getattr_static(torch.Tensor, k, None) is not before.get(k)
    )
    assert changed == [], f"torch.Tensor methods left patched: {changed}"


@pytest.fixture(autouse=True)
def system_temp_folder(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tensor_methods_left_alone: None,  # first: checked after every monkeypatch is undone
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """The test's system temp folder: tempfile's (this process) and TMPDIR (its children)."""
    # a sibling of tmp_path, not inside it: some tests list tmp_path and expect only their files
    name = re.sub(r"\W", "_", request.node.name)[:30]
    folder = tmp_path_factory.mktemp(f"{name}_systemp")
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder
