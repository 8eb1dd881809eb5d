"""env.sh sourced for real in a fresh shell: bash always, zsh too when it is installed here.

Each case sources it twice under `set -u` from a folder other than the project root, then prints
the variables it set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHELLS = [
    "bash",
    pytest.param(
        "zsh", marks=pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
    ),
]
SHOW = 'printf "%s\\n" "$RCNN_ROOT" "$PYTHONPATH" "$DATASET_DIR" "$CHECKPOINT_DIR" "$RESULTS_DIR"'


def source_twice(
    shell: str, root: Path, cwd: Path, extra: str = "", **env: str
) -> subprocess.CompletedProcess:
    script = (
        f"set -eu; source {root}/env.sh; cd /; RCNN_ENV_QUIET=1 source {root}/env.sh; {extra}{SHOW}"
    )
    base = {"PATH": os.environ["PATH"], "HOME": str(cwd)}
    return subprocess.run(
        [shell, "-c", script],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("shell", SHELLS)
def test_sets_root_paths_and_default_dirs(shell, tmp_path: Path):
    proc = source_twice(shell, ROOT, tmp_path)
    assert proc.returncode == 0, proc.stderr
    *printed, root, pythonpath, datasets, checkpoints, results = proc.stdout.splitlines()
    assert root == str(ROOT)
    assert pythonpath == f"{ROOT}/models:{ROOT}"  # no duplicates after the second source
    assert (datasets, checkpoints, results) == (
        f"{ROOT}/datasets",
        f"{ROOT}/checkpoints",
        f"{ROOT}/results",
    )
    # The first (not quiet) source says what it set; the quiet second one prints nothing.
    assert printed[0].startswith("rcnn-bench environment")
    assert sum(line.startswith("  RCNN_ROOT") for line in printed) == 1


@pytest.mark.parametrize("shell", SHELLS)
def test_keeps_user_values_and_existing_pythonpath(shell, tmp_path: Path):
    proc = source_twice(
        shell,
        ROOT,
        tmp_path,
        DATASET_DIR="/data/coco",
        RESULTS_DIR=str(tmp_path / "runs"),
        PYTHONPATH=f"/opt/site:{ROOT}",
        ASCEND_RT_VISIBLE_DEVICES="0,1",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-5:] == [
        str(ROOT),
        f"{ROOT}/models:/opt/site:{ROOT}",
        "/data/coco",
        f"{ROOT}/checkpoints",
        str(tmp_path / "runs"),
    ]
    assert "  ASCEND_RT_VISIBLE_DEVICES=0,1" in lines


@pytest.mark.parametrize("shell", SHELLS)
def test_activates_the_project_venv_once_and_leaves_no_helpers(shell, tmp_path: Path):
    project = tmp_path / "checkout"
    (project / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(ROOT / "env.sh", project / "env.sh")
    # A stand-in activate script that counts how often it runs.
    (project / ".venv" / "bin" / "activate").write_text(
        f'export VIRTUAL_ENV="{project}/.venv"\necho x >> "{tmp_path}/activations"\n'
    )
    leftovers = 'set | grep "^_rcnn" || true; '
    proc = source_twice(shell, project, tmp_path, extra=leftovers + 'echo "venv=$VIRTUAL_ENV"; ')
    assert proc.returncode == 0, proc.stderr
    assert f"venv={project}/.venv" in proc.stdout
    assert (tmp_path / "activations").read_text().count("x") == 1
    assert not [line for line in proc.stdout.splitlines() if line.startswith("_rcnn")]
    assert proc.stdout.splitlines()[-5] == str(project)


@pytest.mark.parametrize("shell", SHELLS)
def test_rcnn_venv_names_a_venv_outside_the_root(shell, tmp_path: Path):
    venv = tmp_path / "envs" / "bench"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text(f'export VIRTUAL_ENV="{venv}"\n')
    proc = source_twice(
        shell, ROOT, tmp_path, extra='echo "venv=$VIRTUAL_ENV"; ', RCNN_VENV=str(venv)
    )
    assert proc.returncode == 0, proc.stderr
    assert f"venv={venv}" in proc.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_follows_a_symlinked_checkout(shell, tmp_path: Path):
    link = tmp_path / "bench"
    link.symlink_to(ROOT)
    proc = source_twice(shell, link, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-5:-3] == [str(ROOT), f"{ROOT}/models:{ROOT}"]
