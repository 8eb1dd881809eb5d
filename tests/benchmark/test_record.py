"""The run record: schema validation, failure mapping, atomic writes under real concurrency."""

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
import torch

from benchmark.record import (
    RECORDS_FILE,
    append_line,
    failed_record,
    new_record,
    new_run_id,
    read_records,
    save_run,
    validate,
    write_run,
)
from rcnn.device import DeviceError
from rcnn.device.cpu import CpuAdapter

PAD = "x" * 6000  # lines longer than PIPE_BUF: unlocked appends of this size could interleave


def make(**fields):
    base = dict(
        mode="train",
        model="e2e_faster_rcnn_R_50_FPN_1x",
        device_type="cpu",
        device_name="test cpu",
        precision="fp32",
        throughput_img_s=3.5,
        env={"hostname": "test-host"},
        git_commit="0123abcd",
    )
    return new_record(**{**base, **fields})


def test_new_record_is_valid_and_complete():
    r = new_record(mode="infer", model="m", precision="bf16", throughput_img_s=1.0)
    assert validate(r) == []
    assert r["schema_version"] == 1 and r["status"] == "ok" and r["cards"] == 1
    assert r["device_type"] == "cpu" and r["device_name"] and r["env"]["hostname"]
    assert r["created_utc"].endswith("+00:00")
    assert {"latency_ms", "ops", "accuracy", "config_hash", "seed"} <= set(r)
    assert r["command"]  # the command line that made the run


@pytest.mark.parametrize("device_type", ["cuda", "mlu", "no_such_vendor"])
def test_recording_a_device_that_is_not_here_never_fails(device_type):
    r = failed_record(
        DeviceError(f"device '{device_type}' requested but it is not here"),
        mode="train",
        model="m",
        precision="fp32",
        device_type=device_type,
        git_commit=None,
    )
    assert r["status"] == "failed" and validate(r) == []
    assert r["device_type"] == device_type and r["env"]["hostname"]
    assert r["device_name"] is None  # this CPU host has no such card to name


def test_run_ids_sort_by_time_and_are_unique():
    t1 = datetime(2025, 1, 2, 3, 4, 5, 6000, tzinfo=timezone.utc)
    t2 = datetime(2025, 1, 2, 3, 4, 5, 7000, tzinfo=timezone.utc)
    ids = [new_run_id(t2), new_run_id(t1), new_run_id(t1)]
    assert ids[1].startswith("20250102T030405.006Z-")
    assert sorted(ids)[-1] == ids[0] and ids[1] != ids[2]


def test_new_record_refuses_unknown_fields():
    with pytest.raises(ValueError, match="throughput"):
        make(throughput=1.0)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"cards": "2"}, "cards: expected int, got str"),
        ({"cards": True}, "cards: expected int, got bool"),
        ({"status": "crashed"}, "status: 'crashed' is not one of ok|failed|nan|oom|skipped"),
        ({"mode": "eval"}, "mode: 'eval' is not one of train|infer"),
        ({"schema_version": 2}, "schema_version: 2 is not one of 1"),
        ({"step_time_ms": {"mean": 1, "p50": 1, "p90": 2}}, "step_time_ms.p99: missing"),
        ({"latency_ms": {"mean": 1, "p50": "1", "p90": 2, "p99": 3}}, "latency_ms.p50: expected"),
        ({"ops": {"nms": 1}}, "ops.nms: expected str, got int"),
        ({"status": "oom"}, "error: a 'oom' record must say why"),
        ({"throughput_img_s": None}, "throughput_img_s: an 'ok' record must have it"),
    ],
)
def test_validate_names_each_problem(change, problem):
    r = {**make(), **change}
    assert any(p.startswith(problem) for p in validate(r)), validate(r)


def test_validate_missing_required_and_non_object():
    r = make()
    del r["precision"], r["run_id"]
    assert validate(r) == ["precision: missing", "run_id: missing"]
    assert validate([1]) == ["a record is a JSON object, got list"]


def test_skipped_cell_holds_its_reason():
    r = make(status="skipped", error="fp16 is not supported on cpu", throughput_img_s=None)
    assert validate(r) == []


class NonFiniteLoss(FloatingPointError):
    pass


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        # torch.cuda's name exists on every supported torch (torch.OutOfMemoryError from 2.4)
        (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom"),
        (RuntimeError("MLU out of memory"), "oom"),
        (MemoryError(), "oom"),
        (NonFiniteLoss("loss is nan at iteration 12"), "nan"),
        (ValueError("bad box in image 7"), "failed"),
    ],
)
def test_failed_record_maps_exceptions(exc, status):
    r = failed_record(
        exc,
        mode="train",
        model="m",
        precision="fp16",
        device_type="cpu",
        device_name="c",
        env={},
        git_commit=None,
    )
    assert r["status"] == status and validate(r) == []
    assert r["error"].startswith(type(exc).__name__)


def test_write_run_writes_folder_and_line(tmp_path):
    r = make(final_loss=float("nan"), status="nan", error="loss is nan", throughput_img_s=None)
    run_dir = write_run(tmp_path, r, log_text="iter 1 loss nan\n", config_text="MODEL: {}\n")
    assert run_dir == tmp_path / "runs" / r["run_id"]
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "config.yaml",
        "env.json",
        "log.txt",
        "record.json",
    ]
    on_disk = json.loads((run_dir / "record.json").read_text())
    line = (tmp_path / RECORDS_FILE).read_text()
    assert line.count("\n") == 1 and json.loads(line) == on_disk
    assert on_disk["final_loss"] is None  # strict JSON: NaN is written as null
    assert json.loads((run_dir / "env.json").read_text()) == {"hostname": "test-host"}


def test_write_run_refuses_an_invalid_record(tmp_path):
    with pytest.raises(ValueError, match="cards"):
        write_run(tmp_path, {**make(), "cards": "one"})
    assert not (tmp_path / RECORDS_FILE).exists()


def _writer(results: str, worker: int, n: int) -> None:
    for i in range(n):
        write_run(results, make(seed=worker * 1000 + i, command=PAD))


def test_concurrent_writers_leave_whole_lines(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 50)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    records, problems = read_records([tmp_path])
    assert problems == []
    assert sorted(r["seed"] for r in records) == sorted(
        w * 1000 + i for w in range(4) for i in range(50)
    )
    assert len(list((tmp_path / "runs").iterdir())) == 200


KILLED_WRITER = """
import sys
from benchmark.record import new_record, write_run
i = 0
while True:
    write_run(sys.argv[1], new_record(mode="train", model="m", device_type="cpu",
              device_name="c", precision="fp32", throughput_img_s=1.0, env={},
              git_commit=None, seed=i, command="y" * 20000))
    i += 1
"""


def test_killed_writer_leaves_only_whole_lines(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)])
    jsonl = tmp_path / RECORDS_FILE
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        not jsonl.exists() or jsonl.read_bytes().count(b"\n") < 20
    ):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed, not finished
    records, problems = read_records([jsonl])
    assert problems == [] and len(records) >= 20
    assert [r["seed"] for r in records] == list(range(len(records)))
    write_run(tmp_path, make(seed=-1))  # the lock died with the writer
    assert read_records([jsonl])[0][-1]["seed"] == -1


def test_append_after_a_torn_line_keeps_the_new_line_whole(tmp_path):
    jsonl = tmp_path / RECORDS_FILE
    jsonl.write_text(json.dumps(make(seed=1)) + "\n" + '{"schema_version": 1, "run_')
    append_line(jsonl, json.dumps(make(seed=2)))
    records, problems = read_records([tmp_path])
    assert [r["seed"] for r in records] == [1, 2]
    assert problems == [f"{jsonl}:2: not a JSON line (Unterminated string starting at)"]


def test_read_records_merges_folders_and_reports_bad_lines(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_run(a, make(seed=1))
    write_run(a, make(seed=2))
    good = make(seed=3)
    write_run(b, good)
    with open(b / RECORDS_FILE, "a") as f:
        f.write("not json\n")
        f.write(json.dumps({**make(seed=4), "cards": 0.5}) + "\n")
        f.write(json.dumps(good) + "\n")  # the same run twice (a copied file)
    write_run(b, make(seed=5))
    extra = tmp_path / "other.jsonl"
    extra.write_text(json.dumps(make(seed=6)) + "\n")

    records, problems = read_records([a, b, extra, tmp_path / "missing"])
    assert [r["seed"] for r in records] == [1, 2, 3, 5, 6]
    jb = b / RECORDS_FILE
    assert problems == [
        f"{jb}:2: not a JSON line (Expecting value)",
        f"{jb}:3: cards: expected int, got float",
        f"{jb}:4: run {good['run_id']} already read at {jb}:1",
        f"{tmp_path / 'missing'}: not found",
    ]


class _BrokenCard(CpuAdapter):
    """A backend that fails in unforeseen ways while being described."""

    def card_name(self, index: int) -> str:
        raise ValueError("driver returned garbage")

    def environment(self) -> dict:
        raise OSError("driver query timed out")


def test_a_failed_run_is_recorded_with_its_own_error_whatever_the_device_says(tmp_path):
    fields = dict(run_id=new_run_id(), mode="train", model="m", precision="fp32", cards=1)
    run_dir, why = save_run(tmp_path, fields, ZeroDivisionError("step 3"), adapter=_BrokenCard())
    assert why is None
    r = json.loads((run_dir / "record.json").read_text())
    assert r["status"] == "failed" and r["error"] == "ZeroDivisionError: step 3"
    assert r["device_type"] == "cpu" and r["device_name"] is None and r["env"] is None
    assert any("describing the device failed (OSError" in n for n in r["notes"])


@pytest.mark.parametrize(
    ("exc", "start"),
    [
        (None, "the run finished, but "),
        (RuntimeError("kernel died"), "RuntimeError: kernel died; "),
    ],
)
def test_a_record_that_cannot_be_written_whole_still_leaves_a_record(tmp_path, exc, start):
    fields = dict(
        run_id=new_run_id(), mode="infer", model="m", device_type="cpu", precision="fp32", cards=1
    )
    run_dir, why = save_run(tmp_path, {**fields, "throughput_img_s": "fast"}, exc)
    assert "throughput_img_s: expected float, got str" in why
    r = json.loads((run_dir / "record.json").read_text())
    assert r["run_id"] == fields["run_id"] and r["status"] == "failed" and validate(r) == []
    assert r["error"].startswith(start) and "writing the record failed" in r["error"]
    assert read_records([tmp_path])[0] == [r]
