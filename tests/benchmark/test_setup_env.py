"""benchmark/setup_env.sh with RCNN_PYTHON, as inside a vendor image: no install, no network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setup_env(tmp_path: Path, pythonpath: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "RCNN_PYTHON": sys.executable,
        "PYTHONPATH": pythonpath,
        # any pip call would fail: no index, and no network through an unroutable proxy
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": "",
        "PIP_PROXY": "http://127.0.0.1:9",
    }
    return subprocess.run(
        ["bash", str(ROOT / "benchmark" / "setup_env.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_importable_project_installs_nothing(tmp_path):
    out = setup_env(tmp_path, os.pathsep.join([str(ROOT / "models"), str(ROOT)]))
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{sys.executable}\n"
    assert out.stderr == ""


def test_project_importable_from_another_checkout_is_reinstalled(tmp_path):
    other = tmp_path / "other"
    for package in ("models/rcnn", "benchmark"):
        (other / package).mkdir(parents=True)
        (other / package / "__init__.py").write_text("")
    out = setup_env(tmp_path, os.pathsep.join([str(other / "models"), str(other)]))
    # it tried to install this checkout (and pip, offline here, could not)
    assert out.returncode != 0
    assert "pip" in out.stderr.lower() or "setuptools" in out.stderr.lower()
