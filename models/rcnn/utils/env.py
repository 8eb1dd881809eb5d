"""What ran where: the software and host facts every run record carries."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import torch

from rcnn.device import DeviceAdapter
from rcnn.device.cpu import cpu_model


@contextlib.contextmanager
def host_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `count` (0 or None: unchanged) within the block, then put
    back, so a caller in the same process (a test, a notebook) keeps its own."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def torchvision_version() -> str | None:
    try:
        import torchvision
    except Exception:  # a torchvision that does not match torch fails at import with anything
        return None
    return torchvision.__version__


def git_commit(root: str | Path | None = None) -> str | None:
    """The checkout's commit (with -dirty); images without .git carry it in RCNN_GIT_COMMIT."""
    root = Path(root) if root else Path(__file__).resolve().parents[3]
    if not (root / ".git").exists():
        return os.environ.get("RCNN_GIT_COMMIT") or None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if out.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout.strip()
            return out.stdout.strip() + ("-dirty" if dirty else "")
    return None


def collect_env(adapter: DeviceAdapter) -> dict[str, str | None]:
    """The record's `env` block: python, torch, torchvision, plug-in, driver, cpu, hostname."""
    backend = adapter.environment()
    plugin = backend.get("plugin")
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision_version(),
        "plugin": f"{plugin} {backend.get('plugin_version')}" if plugin else None,
        "driver": backend.get("driver"),
        "runtime": backend.get("runtime"),
        "cpu": cpu_model(),
        "torch_threads": str(torch.get_num_threads()),
        "hostname": socket.gethostname(),
        "os": platform.platform(),
    }
