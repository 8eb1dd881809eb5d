"""train_net under torchrun: a worker SIGTERMed by torchrun (a peer died) claims no interruption;
torchrun's report names the rank that died."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from rcnn.data.synthetic import ann_file, img_dir
from rcnn.engine.cli import _guard
from rcnn.errors import TrainingInterrupted
from rcnn.utils.signals import StopSignal

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "models/configs/quick/faster_rcnn_R_18_FPN_quick.yaml"


def _stopped(err: KeyboardInterrupt):
    def body() -> int:
        raise err

    return body


def test_a_sigterm_under_torchrun_is_torchruns_stop(monkeypatch, capsys) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    try:
        raise StopSignal(signal.SIGTERM)
    except StopSignal:
        try:  # the trainer wraps the signal in what it saved
            raise TrainingInterrupted("at iteration 7, saved model_0000007.pth") from None
        except TrainingInterrupted as saved:
            wrapped = saved
    assert _guard(_stopped(wrapped), "train_net") == 130
    assert capsys.readouterr().err == (
        "rank 1: stopped by torchrun (SIGTERM): at iteration 7, saved model_0000007.pth\n"
    )
    # Ctrl-C reaches every process of the terminal: that is the user's interruption
    assert _guard(_stopped(KeyboardInterrupt()), "train_net") == 130
    assert capsys.readouterr().err == "interrupted (Ctrl-C)\n"


def test_a_sigterm_outside_torchrun_is_an_interruption(monkeypatch, capsys) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert _guard(_stopped(StopSignal(signal.SIGTERM)), "train_net") == 130
    assert capsys.readouterr().err == "interrupted (SIGTERM)\n"


def _rank_pid(out: Path, rank: int) -> int | None:
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ours = str(out).encode() in cmdline and b"torch.distributed.run" not in cmdline
        if ours and f"RANK={rank}".encode() in environ:
            return int(proc.name)
    return None


def test_killed_rank_under_torchrun_is_not_an_interruption(tiny_set, overrides, tmp_path):
    root = tmp_path / "dataset_dir"
    (root / "coco" / "annotations").mkdir(parents=True)
    (root / "coco" / "train2017").symlink_to(img_dir(tiny_set, "train"))
    shutil.copy(ann_file(tiny_set, "train"), root / "coco/annotations/instances_train2017.json")
    out = tmp_path / "out"
    opts = overrides(out, **{"DATASETS.TRAIN": "('coco_2017_train',)", "SOLVER.MAX_ITER": 5000})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone"]
    cmd += [str(ROOT / "models/tools/train_net.py"), "--skip-test", "--config-file", str(QUICK)]
    env = {**os.environ, "DATASET_DIR": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [*cmd, *opts], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    try:
        log = out / "log.txt"
        while not (log.exists() and " iter: " in log.read_text()):  # rank 0 logs its steps
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.2)
        os.kill(_rank_pid(out, 1), signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode != 0
    assert "interrupted (SIGTERM)" not in err, err[-3000:]
    assert "rank 0: stopped by torchrun (SIGTERM)" in err or "Connection" in err, err[-3000:]
    assert "rank      : 1 (local_rank: 1)" in err and "exitcode  : -9" in err, err[-3000:]
