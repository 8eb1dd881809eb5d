"""docker/: each Dockerfile parses and has the shape the images rely on; the shared scripts work.

No image is built here (no Docker engine): the Dockerfiles are parsed with dockerfile-parse, and
the shared entrypoint and install script are run for real on this machine, the latter's argument
handling with a stand-in `python3` that records pip calls (test_install_step.py runs its
requirements step against a fake vendor image with a real pip).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
BASES = {
    "cuda": "nvcr.io/nvidia/pytorch:",
    "mlu": "yellow.hub.cambricon.com/pytorch/pytorch:",
    "npu": "quay.io/ascend/torch-npu:",
    "cpu": "python:",
}
REQUIREMENTS = {
    "cuda": "requirements-vendor.txt",  # keeps NGC's torch
    "mlu": "requirements-vendor.txt",
    "npu": "requirements-vendor.txt",
    "cpu": "requirements.txt",
}
INSTALL = "/opt/rcnn-bench/install_project.sh"
ENTRYPOINT = "/opt/rcnn-bench/entrypoint.sh"


def parse(backend: str, **build_args: str) -> DockerfileParser:
    content = (DOCKER / f"Dockerfile.{backend}").read_bytes()
    return DockerfileParser(fileobj=io.BytesIO(content), build_args=build_args)


def instructions(df: DockerfileParser) -> list[tuple[str, str]]:
    return [(i["instruction"], i["value"]) for i in df.structure if i["instruction"] != "COMMENT"]


@pytest.mark.parametrize("backend", BASES)
def test_base_image_is_an_argument(backend):
    steps = instructions(parse(backend))
    assert steps[0][0] == "ARG" and steps[0][1].startswith("BASE_IMAGE=" + BASES[backend])
    assert steps[1] == ("FROM", "${BASE_IMAGE}")
    assert parse(backend).baseimage.startswith(BASES[backend])
    assert parse(backend, BASE_IMAGE="registry.local/base:1").baseimage == "registry.local/base:1"


@pytest.mark.parametrize("backend", BASES)
def test_shared_install_steps_then_build_time_check(backend):
    df = parse(backend)
    assert df.args["REQUIREMENTS"] == REQUIREMENTS[backend]
    runs = [value for name, value in instructions(df) if name == "RUN"]
    assert runs == [
        f'{INSTALL} deps "${{REQUIREMENTS}}"',
        f"{INSTALL} project",
        f"{ENTRYPOINT} python -m benchmark devices",
    ]
    steps = instructions(df)
    assert ("ENTRYPOINT", f'["{ENTRYPOINT}"]') in steps
    assert steps[-1] == ("CMD", '["bash"]')


@pytest.mark.parametrize("backend", BASES)
def test_copied_files_exist_in_the_build_context(backend):
    for name, value in instructions(parse(backend)):
        if name == "COPY" and not value.startswith(". "):
            for source in value.split()[:-1]:
                assert (ROOT / source).is_file(), f"Dockerfile.{backend}: COPY {source} missing"


def test_npu_never_installs_the_pinned_torch_and_sets_up_cann():
    df = parse("npu")
    runs = " ".join(value for name, value in instructions(df) if name == "RUN")
    assert "requirements.txt" not in runs and "pip install torch" not in runs
    assert df.envs["RCNN_TOOLKIT_ENV"] == "/usr/local/Ascend/ascend-toolkit/set_env.sh"


def test_vendor_requirements_leave_torch_to_the_image():
    lines = (ROOT / "requirements-vendor.txt").read_text().splitlines()
    names = {line.split("=")[0].split("<")[0].split(">")[0].strip().lower() for line in lines}
    assert not names & {"torch", "torchvision", "torch-npu", "torch_npu", "torch-mlu", "torch_mlu"}


def test_dockerignore_keeps_data_and_environments_out():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "venv", "results/*", "datasets", "checkpoints"} <= ignored
    assert "!results/README.md" in ignored


def test_shared_scripts_are_executable_in_git():
    out = subprocess.run(
        ["git", "ls-files", "-s", "docker/entrypoint.sh", "docker/install_project.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    modes = [line.split()[0] for line in out if line]
    assert modes == ["100755", "100755"]


def test_entrypoint_sources_toolkit_and_env_then_runs_the_command(tmp_path: Path):
    toolkit = tmp_path / "set_env.sh"
    toolkit.write_text('export FAKE_TOOLKIT_HOME=/opt/toolkit\necho "toolkit args: $#" >&2\n')
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DIR")}
    env.update(RCNN_ROOT=str(ROOT), RCNN_TOOLKIT_ENV=f"{toolkit}:{tmp_path}/missing.sh")
    proc = subprocess.run(
        [
            str(DOCKER / "entrypoint.sh"),
            "sh",
            "-c",
            'echo "$FAKE_TOOLKIT_HOME|$DATASET_DIR|$1"',
            "sh",
            "an arg",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "/opt/toolkit|/workspace/datasets|an arg"
    assert "toolkit args: 0" in proc.stderr  # the command's arguments are not the toolkit's
    assert "missing.sh not found" in proc.stderr


FAKE_PYTHON = """#!/usr/bin/env bash
# Stand-in for the image's python3: the torch version lives in $FAKE_TORCH; pip calls are logged.
if [ "$1" = - ]; then cat >/dev/null; cat "$FAKE_TORCH"; exit 0; fi
if [ "$1 $2 $3" = "-m pip install" ]; then
    echo "$*" >> "$FAKE_LOG"
    exit 0
fi
exit 1
"""


@pytest.fixture
def fake_image(tmp_path: Path):
    """A project root and PATH where python3/python are the stand-in above."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python3", "python"):
        (bin_dir / name).write_text(FAKE_PYTHON)
        (bin_dir / name).chmod(0o755)
    project = tmp_path / "project"
    project.mkdir()
    for name in ("requirements.txt", "requirements-vendor.txt"):
        shutil.copy(ROOT / name, project / name)
    (tmp_path / "torch").write_text("2.9.0+vendor\n")

    def install(*args: str) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FAKE_TORCH": str(tmp_path / "torch"),
            "FAKE_LOG": str(tmp_path / "pip.log"),
        }
        return subprocess.run(
            ["bash", str(DOCKER / "install_project.sh"), *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    install.log = tmp_path / "pip.log"
    return install


def test_install_project_is_editable_without_deps(fake_image):
    proc = fake_image("project")
    assert proc.returncode == 0, proc.stderr
    assert "-m pip install --no-cache-dir --disable-pip-version-check --no-deps -e ." in (
        fake_image.log.read_text()
    )


@pytest.mark.parametrize(
    "args", [(), ("deps",), ("deps", "missing.txt"), ("project", "extra"), ("other",)]
)
def test_install_usage_errors(fake_image, args):
    proc = fake_image(*args)
    assert proc.returncode != 0 and ("usage:" in proc.stderr or "not found" in proc.stderr)
