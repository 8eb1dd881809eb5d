"""Issue 14's corpus, tools and checkpoints: train_net / test_net end every fault in one line
(exit 2 for a user error, 130 for Ctrl-C with the iterations kept, 1 plus a traceback file for
a bug), and damaged or foreign checkpoints are named, never half-loaded in silence."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rcnn.checkpoint import CheckpointError, read_torch_file
from rcnn.config import load_config
from rcnn.data.synthetic import ann_file, img_dir
from rcnn.engine.cli import _guard, main_test, main_train
from rcnn.engine.run import build_training, start_session, train

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "models" / "tools"
QUICK = ROOT / "models/configs/quick/faster_rcnn_R_18_FPN_quick.yaml"


@pytest.fixture(scope="module")
def dataset_dir(tiny_set: Path, tmp_path_factory) -> Path:
    """The tiny set laid out as $DATASET_DIR/coco/{train,val}2017 for the tools' catalog."""
    root = tmp_path_factory.mktemp("dataset_dir")
    (root / "coco" / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        (root / "coco" / f"{split}2017").symlink_to(img_dir(tiny_set, split))
        shutil.copy(
            ann_file(tiny_set, split), root / "coco/annotations" / f"instances_{split}2017.json"
        )
    return root


def _tool_args(output_dir: Path, overrides, **extra) -> list[str]:
    sets = {"DATASETS.TRAIN": "('coco_2017_train',)", "DATASETS.TEST": "('coco_2017_val',)"}
    return ["--config-file", str(QUICK), *overrides(output_dir, **sets, **extra)]


def _run_tool(tool: str, args: list[str], dataset_dir: Path, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "DATASET_DIR": str(dataset_dir), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        [sys.executable, str(TOOLS / tool), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=full_env,
        cwd=ROOT,
    )


def _one_line(stderr: str, *needles: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_max_iter_zero_stops_before_work(dataset_dir, overrides, tmp_path) -> None:
    out = tmp_path / "out"
    proc = _run_tool(
        "train_net.py", _tool_args(out, overrides, **{"SOLVER.MAX_ITER": 0}), dataset_dir
    )
    assert proc.returncode == 2
    _one_line(proc.stderr, "error: command line overrides: SOLVER.MAX_ITER must be at least 1")
    assert not (out / "model_final.pth").exists()


def _in_process(main, capsys, args: list[str]) -> tuple[int, str]:
    """A tool's main function on parsed arguments, as its script calls it; (exit, stderr)."""
    ckpt = args[args.index("--ckpt") + 1] if "--ckpt" in args else None
    rest = [a for a in args if a not in ("--ckpt", ckpt)]
    namespace = argparse.Namespace(
        config_file=rest[1], opts=rest[2:], ckpt=ckpt, skip_test=True, no_resume=False
    )
    log = logging.getLogger("rcnn")
    saved = (log.handlers[:], log.propagate, log.level)
    try:
        code = main(namespace)
    finally:  # the tool sets up its own console logger; later tests read logs through pytest
        log.handlers[:], log.propagate, log.level = saved
    return code, capsys.readouterr().err


def test_bad_rcnn_ops_and_unbuilt_key_exit_2(
    dataset_dir, overrides, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("DATASET_DIR", str(dataset_dir))
    args = _tool_args(tmp_path / "out", overrides)
    dcn = [*args, "MODEL.RESNETS.STAGE_WITH_DCN", "(False, True, True, True)"]
    code, err = _in_process(main_train, capsys, dcn)
    assert code == 2
    _one_line(err, "MODEL.RESNETS.STAGE_WITH_DCN is not implemented")
    monkeypatch.setenv("RCNN_OPS", "bogus")
    code, err = _in_process(main_train, capsys, args)
    assert code == 2
    _one_line(err, "RCNN_OPS='bogus' is not one of auto, kernel, native")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-checkpoint",))


def test_malicious_checkpoint_is_refused_and_never_runs(
    dataset_dir, overrides, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("DATASET_DIR", str(dataset_dir))
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pth"
    torch.save({"model": _RunsCode()}, evil)
    args = ["--ckpt", str(evil), *_tool_args(tmp_path / "out", overrides)]
    code, err = _in_process(main_test, capsys, args)
    assert code == 2
    line = _one_line(err, f"{evil}: refused to load", "posix.system")
    assert "weights_only" not in line  # torch's own advice to disable the check is not echoed
    assert not (tmp_path / "pwned-by-checkpoint").exists()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_signal_keeps_the_iterations_done(sig, dataset_dir, overrides, tmp_path) -> None:
    """Ctrl-C, or torchrun's / Slurm's SIGTERM, saves the iterations done. The child starts with
    SIGINT ignored, as a background job or a CI runner starts it: the tool must still stop."""
    out = tmp_path / "out"
    # no periodic checkpoint: the one the signal saves is the only one
    args = _tool_args(out, overrides, **{"SOLVER.MAX_ITER": 500, "SOLVER.CHECKPOINT_PERIOD": 0})
    env = {**os.environ, "DATASET_DIR": str(dataset_dir), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(TOOLS / "train_net.py"), "--skip-test", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        preexec_fn=_ignore_sigint,
    )
    log = out / "log.txt"
    try:  # a child that ignored the signal would train on: kill it whatever happens
        while not (log.exists() and " iter: " in log.read_text()):  # 20 steps are done
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, stderr[-2000:]
    how = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    line = _one_line(stderr, f"interrupted ({how}): at iteration ", "run again to resume")
    name = line.split("saved ")[1].split(",")[0]
    assert (out / "last_checkpoint").read_text() == name
    iteration = int(name[len("model_") : -len(".pth")])
    assert iteration >= 20 and read_torch_file(out / name)["iteration"] == iteration
    assert [p.name for p in out.glob("model_*.pth")] == [name]


def test_unexpected_error_is_one_line_and_a_traceback_file(capsys) -> None:
    def body() -> int:
        return {}["a key nobody set"]

    assert _guard(body, "train_net") == 1
    line = _one_line(capsys.readouterr().err, "error: unexpected error: KeyError: ")
    path = Path(line.split("full traceback in ")[1].rstrip(")"))
    assert "Traceback" in path.read_text() and "a key nobody set" in path.read_text()
    path.unlink()


# ---- checkpoints, in process on the tiny set ---------------------------------------------------
@pytest.fixture(scope="module")
def trained(tiny_set, overrides, tmp_path_factory) -> Path:
    """A real 1-iteration run and its checkpoint."""
    out = tmp_path_factory.mktemp("trained")
    cfg = load_config(
        str(QUICK), overrides(out, **{"SOLVER.MAX_ITER": 1, "SOLVER.CHECKPOINT_PERIOD": 1})
    )
    train(start_session(cfg), resume=False)
    return out


def _copy_run(trained: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    return out


def _damage(path: Path, change) -> None:
    data = torch.load(path, weights_only=True)
    change(data)
    torch.save(data, path)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["extra"]["rng"].update(torch=torch.zeros(3, dtype=torch.uint8)),
        lambda d: d["extra"]["rng"]["python"].update(state=torch.tensor([1, 2])),
        lambda d: d["extra"]["rng"].pop("numpy"),
        lambda d: d["extra"].update(rng="not a state"),
    ],
    ids=["torch_state_short", "python_state_short", "numpy_missing", "rng_not_a_dict"],
)
def test_damaged_rng_state_is_named(trained, tiny_cfg, tmp_path, change) -> None:
    out = _copy_run(trained, tmp_path)
    _damage(out / "model_final.pth", change)
    cfg = tiny_cfg(out, **{"SOLVER.MAX_ITER": 4})
    with pytest.raises(CheckpointError) as err:
        build_training(start_session(cfg))
    message = str(err.value)
    assert message.startswith(f"{out / 'model_final.pth'}: its saved RNG state is damaged")
    assert "\n" not in message and "--no-resume" in message


def test_stale_temp_files_are_removed_at_start(trained, tiny_cfg, tmp_path, caplog) -> None:
    out = _copy_run(trained, tmp_path)
    stale = out / ".model_0000004.pth.k2j3.tmp"
    stale.write_bytes(b"half a checkpoint")
    keep = out / "notes.tmp"  # not one of ours: left alone
    keep.write_text("x")
    with caplog.at_level(logging.WARNING, logger="rcnn.run"):
        run = build_training(start_session(tiny_cfg(out, **{"SOLVER.MAX_ITER": 4})))
    assert not stale.exists() and keep.exists() and run.start_iter == 1
    assert f"removed {stale}, left by a save that was killed mid-write" in caplog.text


def test_truncated_last_checkpoint_is_named(trained, tiny_cfg, tmp_path) -> None:
    out = _copy_run(trained, tmp_path)
    data = (out / "model_final.pth").read_bytes()
    (out / "model_final.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        build_training(start_session(tiny_cfg(out, **{"SOLVER.MAX_ITER": 4})))


def test_last_checkpoint_naming_a_missing_file(trained, tiny_cfg, tmp_path) -> None:
    out = _copy_run(trained, tmp_path)
    (out / "model_final.pth").unlink()
    with pytest.raises(CheckpointError, match="names model_final.pth, which does not exist"):
        build_training(start_session(tiny_cfg(out, **{"SOLVER.MAX_ITER": 4})))


def test_weights_of_another_architecture_are_refused(tiny_cfg, tmp_path) -> None:
    foreign = tmp_path / "foreign.pth"
    torch.save({"model": {"encoder.layer0.weight": torch.zeros(3, 3)}}, foreign)
    cfg = tiny_cfg(tmp_path / "out", **{"MODEL.WEIGHT": str(foreign)})
    with pytest.raises(CheckpointError) as err:
        build_training(start_session(cfg), resume=False)
    assert str(err.value) == (
        f"{foreign}: no tensor matches the model (MODEL.WEIGHT of another architecture?); "
        "1 unexpected, 0 with another shape"
    )


def test_partial_weights_load_with_a_warning(trained, tiny_cfg, tmp_path, caplog) -> None:
    """Documented acceptance: a new head (other class count) is normal fine-tuning; it loads
    what fits and the warning says what did not."""
    state = torch.load(trained / "model_final.pth", weights_only=True)["model"]
    state["roi_heads.box.predictor.cls_score.weight"] = torch.zeros(7, 3)
    part = tmp_path / "part.pth"
    torch.save({"model": state}, part)
    cfg = tiny_cfg(tmp_path / "out", **{"MODEL.WEIGHT": str(part)})
    with caplog.at_level(logging.WARNING, logger="rcnn.run"):
        build_training(start_session(cfg), resume=False)
    assert f"initialised from {part} only in part" in caplog.text
    assert "1 with a different shape" in caplog.text and "cls_score.weight" in caplog.text
