"""Each Dockerfile's install step run for real against a fake vendor image (no Docker engine here).

The fake image is a virtual environment that simulates a vendor image: a stand-in torch
2.1.0a0+vendor and torchvision 0.16.0a0+vendor (distributions written into site-packages the way a
source build leaves them), a stand-in plug-in torch_mlu 1.0.0+vendor, and a real numpy 1.26.4 (the
NumPy 1.x a torch 2.1-2.3 build needs). docker/install_project.sh then installs the requirements
file the Dockerfile names, from the package index, with that venv's python first on PATH.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "docker" / "install_project.sh"
KEPT = {
    "torch": "2.1.0a0+vendor",
    "torchvision": "0.16.0a0+vendor",
    "torch_mlu": "1.0.0+vendor",
    "numpy": "1.26.4",
}


def write_distribution(site: Path, name: str, version: str) -> None:
    """An installed distribution as pip sees one: a package and its .dist-info with a RECORD."""
    package = site / name
    package.mkdir()
    (package / "__init__.py").write_text(f"__version__ = {version!r}\n")
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("vendor\n")
    files = [f"{name}/__init__.py", *(f"{info.name}/{f}" for f in ("METADATA", "INSTALLER"))]
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in [*files, f"{info.name}/RECORD"]))


def versions(python: Path) -> dict[str, str]:
    code = (
        "from importlib import metadata\n"
        "for n in ('torch', 'torchvision', 'torch_mlu', 'numpy'):\n"
        "    print(n, metadata.version(n))\n"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return dict(line.split() for line in out.stdout.splitlines())


@pytest.fixture(scope="module")
def vendor_image(tmp_path_factory) -> Path:
    """The fake vendor image's python (see the module docstring)."""
    root = tmp_path_factory.mktemp("vendor-image")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "numpy==1.26.4"],
        check=True,
        timeout=300,
    )
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for name in ("torch", "torchvision", "torch_mlu"):
        write_distribution(site, name, KEPT[name])
    assert versions(python) == KEPT
    return python


def install_step(python: Path, requirements: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PIP_CONSTRAINT", None)
    return subprocess.run(
        ["bash", str(INSTALL), "deps", str(requirements)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def dockerfile_requirements(backend: str) -> str:
    text = (ROOT / "docker" / f"Dockerfile.{backend}").read_text()
    assert 'RUN /opt/rcnn-bench/install_project.sh deps "${REQUIREMENTS}"' in text
    assert "ENV RCNN_PYTHON=/opt/rcnn-bench/python" in text
    return re.search(r"^ARG REQUIREMENTS=(\S+)$", text, re.MULTILINE).group(1)


@pytest.mark.parametrize("backend", ["cuda", "mlu", "npu"])
def test_vendor_install_step_keeps_torch_torchvision_numpy_and_plugin(vendor_image, backend):
    requirements = dockerfile_requirements(backend)
    assert requirements == "requirements-vendor.txt"
    proc = install_step(vendor_image, ROOT / requirements, ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert versions(vendor_image) == KEPT
    # what was missing is there, and works with the image's NumPy 1.x
    check = "import pandas, pycocotools.mask, yacs, matplotlib; print(pandas.Series([1, 2]).sum())"
    out = subprocess.run([vendor_image, "-c", check], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "3", out.stderr
    pip_check = subprocess.run([vendor_image, "-m", "pip", "check"], capture_output=True, text=True)
    assert "numpy" not in pip_check.stdout


def test_install_step_fails_rather_than_change_the_image(vendor_image, tmp_path):
    wants_numpy_2 = tmp_path / "requirements-vendor.txt"
    wants_numpy_2.write_text("numpy>=2\n")
    proc = install_step(vendor_image, wants_numpy_2, tmp_path)
    assert proc.returncode == 1
    assert "cannot be installed without changing the image's" in proc.stderr
    assert "numpy==1.26.4" in proc.stderr
    assert versions(vendor_image) == KEPT


def test_cpu_image_installs_the_pins_over_a_plain_python():
    text = (ROOT / "docker" / "Dockerfile.cpu").read_text()
    assert dockerfile_requirements("cpu") == "requirements.txt"
    assert re.search(r"^ARG BASE_IMAGE=python:3\.\d+-slim$", text, re.MULTILINE)
