"""run_docker.sh --dry-run: the docker command each backend gets.

No Docker engine is needed. Vendor hosts are simulated: RCNN_HOST_ROOT points run_docker.sh at a
temporary folder where empty regular files stand in for the device nodes (/dev/davinci0, ...,
/dev/cambricon_dev0, ...) and driver files (/usr/local/Ascend/driver, npu-smi, cnmon).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "run_docker.sh"
VISIBLE = ("CUDA_VISIBLE_DEVICES", "MLU_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES")
PRESET = ("DATASET_DIR", "CHECKPOINT_DIR", "RESULTS_DIR", "RCNN_SHM_SIZE", "RCNN_BASE_IMAGE")


def run_script(*args: str, host: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in VISIBLE + PRESET}
    clean["RCNN_HOST_ROOT"] = str(host) if host else "/nonexistent-host"
    clean.update(env)
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=clean,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )


def dry_run(*args: str, host: Path | None = None, **env: str) -> list[str]:
    proc = run_script("--dry-run", *args, host=host, **env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def flag_values(tokens: list[str], flag: str) -> list[str]:
    return [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t == flag]


def touch(host: Path, *paths: str) -> None:
    for rel in paths:
        path = host / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


@pytest.fixture
def ascend_host(tmp_path: Path) -> Path:
    """A simulated Ascend host: 12 cards (so davinci10 must sort after davinci9) and its driver."""
    touch(tmp_path, *(f"dev/davinci{i}" for i in range(12)))
    touch(tmp_path, "dev/davinci_manager", "dev/devmm_svm", "dev/hisi_hdc")
    touch(tmp_path, "usr/local/Ascend/driver/version.info", "usr/local/dcmi/dcmi_interface")
    touch(tmp_path, "usr/local/bin/npu-smi", "etc/ascend_install.info")
    return tmp_path


@pytest.fixture
def cambricon_host(tmp_path: Path) -> Path:
    """A simulated Cambricon host: control node, 4 cards, their IPC nodes and cnmon."""
    touch(tmp_path, "dev/cambricon_ctl", "usr/bin/cnmon")
    touch(tmp_path, *(f"dev/cambricon_dev{i}" for i in range(4)))
    touch(tmp_path, *(f"dev/cambricon_ipcm{i}" for i in range(4)))
    return tmp_path


def test_common_flags_and_default_image():
    tokens = dry_run("cpu")
    assert tokens[:3] == ["docker", "run", "--rm"]
    assert "--ipc=host" in tokens
    assert flag_values(tokens, "--shm-size") == ["16g"]
    assert "--privileged" not in tokens
    assert tokens[-1] == "rcnn-bench:cpu"


def test_cpu_gets_no_devices():
    tokens = dry_run("cpu")
    assert "--gpus" not in tokens and "--device" not in tokens
    assert not any(t.endswith(":ro") for t in tokens)


def test_data_folders_are_mounted_and_set_inside(tmp_path: Path):
    tokens = dry_run("cpu", DATASET_DIR="/data/coco", CHECKPOINT_DIR=str(tmp_path / "ckpt"))
    mounts = flag_values(tokens, "-v")
    assert "/data/coco:/workspace/datasets" in mounts
    assert f"{tmp_path / 'ckpt'}:/workspace/checkpoints" in mounts
    assert f"{ROOT / 'results'}:/workspace/results" in mounts  # env.sh's default
    assert {
        "DATASET_DIR=/workspace/datasets",
        "CHECKPOINT_DIR=/workspace/checkpoints",
        "RESULTS_DIR=/workspace/results",
    } <= set(flag_values(tokens, "-e"))


def test_relative_data_folder_is_made_absolute(tmp_path: Path):
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "cpu"],
        cwd=tmp_path,
        env={**os.environ, "DATASET_DIR": "coco"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"{tmp_path}/coco:/workspace/datasets" in flag_values(shlex.split(proc.stdout), "-v")


def test_privileged_only_when_asked():
    assert "--privileged" in dry_run("cpu", "--privileged")


def test_shm_size_from_flag_and_environment():
    assert flag_values(dry_run("cpu", "--shm-size", "64g"), "--shm-size") == ["64g"]
    assert flag_values(dry_run("cpu", "--shm-size=8g"), "--shm-size") == ["8g"]
    assert flag_values(dry_run("cpu", RCNN_SHM_SIZE="32g"), "--shm-size") == ["32g"]


def test_cuda_gets_all_gpus_and_visible_devices_passed_through():
    tokens = dry_run("cuda")
    assert flag_values(tokens, "--gpus") == ["all"]
    assert not any(e.startswith("CUDA_VISIBLE_DEVICES") for e in flag_values(tokens, "-e"))
    tokens = dry_run("cuda", CUDA_VISIBLE_DEVICES="2,3")
    assert "CUDA_VISIBLE_DEVICES=2,3" in flag_values(tokens, "-e")


def test_npu_devices_in_card_order_and_driver_mounts(ascend_host: Path):
    tokens = dry_run("npu", host=ascend_host)
    devices = flag_values(tokens, "--device")
    cards = [f"{ascend_host}/dev/davinci{i}:/dev/davinci{i}" for i in range(12)]
    nodes = ("davinci_manager", "devmm_svm", "hisi_hdc")
    control = [f"{ascend_host}/dev/{n}:/dev/{n}" for n in nodes]
    assert devices == cards + control
    mounts = flag_values(tokens, "-v")
    for path in (
        "/usr/local/Ascend/driver",
        "/usr/local/dcmi",
        "/usr/local/bin/npu-smi",
        "/etc/ascend_install.info",
    ):
        assert f"{ascend_host}{path}:{path}:ro" in mounts
    assert "--gpus" not in tokens and "--privileged" not in tokens


def test_npu_visible_devices_passed_through_and_checked(ascend_host: Path):
    tokens = dry_run("npu", host=ascend_host, ASCEND_RT_VISIBLE_DEVICES="4,11")
    assert "ASCEND_RT_VISIBLE_DEVICES=4,11" in flag_values(tokens, "-e")
    proc = run_script("--dry-run", "npu", host=ascend_host, ASCEND_RT_VISIBLE_DEVICES="3,12")
    assert proc.returncode != 0
    assert "ASCEND_RT_VISIBLE_DEVICES=3,12 names card '12'" in proc.stderr
    assert "12 card(s)" in proc.stderr


def test_npu_optional_driver_file_missing_is_reported_not_mounted(ascend_host: Path):
    (ascend_host / "usr/local/bin/npu-smi").unlink()
    proc = run_script("--dry-run", "npu", host=ascend_host)
    assert proc.returncode == 0, proc.stderr
    assert "npu-smi not found" in proc.stderr
    assert not any("npu-smi" in m for m in flag_values(shlex.split(proc.stdout), "-v"))


def test_npu_without_driver_fails_clearly(tmp_path: Path):
    touch(tmp_path, "dev/davinci0")
    proc = run_script("--dry-run", "npu", host=tmp_path)
    assert proc.returncode != 0 and proc.stdout == ""
    assert "davinci_manager not found" in proc.stderr and "driver" in proc.stderr


def test_mlu_devices_ipc_nodes_and_cnmon(cambricon_host: Path):
    tokens = dry_run("mlu", host=cambricon_host, MLU_VISIBLE_DEVICES="1,3")
    devices = flag_values(tokens, "--device")
    expected = [
        "cambricon_ctl",
        *(f"cambricon_dev{i}" for i in range(4)),
        *(f"cambricon_ipcm{i}" for i in range(4)),
    ]
    assert devices == [f"{cambricon_host}/dev/{n}:/dev/{n}" for n in expected]
    assert f"{cambricon_host}/usr/bin/cnmon:/usr/bin/cnmon:ro" in flag_values(tokens, "-v")
    assert "MLU_VISIBLE_DEVICES=1,3" in flag_values(tokens, "-e")


def test_mlu_without_cards_fails_clearly(tmp_path: Path):
    touch(tmp_path, "dev/cambricon_ctl")
    proc = run_script("--dry-run", "mlu", host=tmp_path)
    assert proc.returncode != 0
    assert "no " in proc.stderr and "cambricon_devN" in proc.stderr


def test_command_after_double_dash_survives_quoting():
    command = ["bash", "benchmark/FasterRCNN_Train.sh", "--precision", "fp16", "it's two words"]
    tokens = dry_run("cuda", "my/image:tag", "--", *command)
    assert tokens[-len(command) - 1 :] == ["my/image:tag", *command]


def test_build_prints_the_build_command_first():
    proc = run_script(
        "--dry-run", "--build", "cpu", "rcnn:cpu-test", RCNN_BASE_IMAGE="python:3.11-slim"
    )
    assert proc.returncode == 0, proc.stderr
    build, run = (shlex.split(line) for line in proc.stdout.splitlines())
    assert build[:2] == ["docker", "build"]
    assert flag_values(build, "-f") == [str(ROOT / "docker" / "Dockerfile.cpu")]
    assert flag_values(build, "-t") == ["rcnn:cpu-test"]
    build_args = flag_values(build, "--build-arg")
    assert "BASE_IMAGE=python:3.11-slim" in build_args
    assert any(a.startswith("GIT_COMMIT=") for a in build_args)
    assert build[-1] == str(ROOT)
    assert run[:2] == ["docker", "run"] and run[-1] == "rcnn:cpu-test"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "missing backend"),
        (("tpu",), "unknown backend 'tpu' (one of: cuda mlu npu cpu)"),
        (("cpu", "--bogus"), "unknown option '--bogus'"),
        (("cpu", "image", "extra"), "too many arguments"),
        (("cpu", "--shm-size"), "--shm-size needs a value"),
    ],
)
def test_usage_errors(args, message):
    proc = run_script("--dry-run", *args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert message in proc.stderr and "usage: run_docker.sh" in proc.stderr


def test_help():
    proc = run_script("--help")
    assert proc.returncode == 0 and "--privileged" in proc.stdout and "--dry-run" in proc.stdout
