"""Issue 14's corpus, harness side: `python -m benchmark` ends every bad input and fault in one
line (exit 2 for a user error, 1 plus a traceback file for a bug, 130 for Ctrl-C with an
`interrupted` record); the report refuses a bad records.jsonl line with file:line and keeps the
rest; a run whose rank 0 stopped between record.json and records.jsonl is still reported.

Most cases run in process through `benchmark.__main__.main`; Ctrl-C and a killed torchrun rank
are real processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import benchmark.commands.report as report_verb
from benchmark.__main__ import main
from benchmark.record import RECORDS_FILE, complete_run, new_record, read_records, write_run

MODEL = "faster_rcnn_R_18_FPN_quick"
TINY = ["--model", MODEL, "--device", "cpu", "--size", "64x96", "--data", "synthetic:4"]


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _good(**fields) -> dict:
    fields = {
        "mode": "infer",
        "model": "faster_rcnn_R_18_FPN_quick",
        "device_type": "cpu",
        "device_name": "test cpu",
        "precision": "fp32",
        "throughput_img_s": 10.0,
        "batch_per_card": 1,
        "env": {"python": "3"},
        "git_commit": "abc",
        **fields,
    }
    return new_record(**fields)


# ---- the report: one bad line is refused with file:line, the rest are reported --------------
BAD_LINES: dict[str, tuple[str, str]] = {
    "nested_too_deep": ("[" * 100_000 + "]" * 100_000, "not a usable JSON line"),
    "nested_deep_field": (
        json.dumps({**_good(), "notes": None, "x": json.loads("[" * 30 + "]" * 30)}),
        "nested deeper than 6 levels",
    ),
    "number_5000_digits": (
        json.dumps(_good()).replace('"cards": 1', '"cards": ' + "9" * 5000),
        "not a usable JSON line",
    ),
    "nan_throughput": (
        json.dumps(_good()).replace('"throughput_img_s": 10.0', '"throughput_img_s": NaN'),
        "NaN is not a JSON number",
    ),
    "infinite_latency": (
        json.dumps(_good(latency_ms={"mean": 1, "p50": 1, "p90": 1, "p99": 1})).replace(
            '"p99": 1', '"p99": 1e999'
        ),
        "latency_ms.p99: not a finite number",
    ),
    "negative_throughput": (json.dumps(_good(throughput_img_s=-3.0)), "throughput_img_s: -3.0"),
    "zero_cards": (json.dumps(_good(cards=0)), "cards: 0 is outside [1, inf]"),
    "zero_batch": (json.dumps(_good(batch_per_card=0)), "batch_per_card: 0 is outside"),
    "data_share_above_one": (json.dumps(_good(data_time_share=2.5)), "data_time_share: 2.5"),
    "accuracy_above_one": (json.dumps(_good(accuracy={"bbox_ap": 37.5})), "accuracy.bbox_ap"),
    "negative_memory": (json.dumps(_good(peak_mem_mb=-1.0)), "peak_mem_mb: -1.0"),
    "model_with_newline": (
        json.dumps(_good(model="m\n## injected heading\n| a | b |")),
        "model: text with a line break",
    ),
    "device_name_with_newline": (
        json.dumps(_good(device_name="cpu\r\nx")),
        "device_name: text with a line break",
    ),
    "model_with_table_syntax": (json.dumps(_good(model="a | b")), "model: '|' is table syntax"),
    "precision_with_pipe": (json.dumps(_good(precision="fp32|x")), "precision: '|' is table"),
    "cards_as_text": (json.dumps(_good(cards="8")), "cards: expected int, got str"),
    "cards_as_bool": (json.dumps(_good(cards=True)), "cards: expected int, got bool"),
    "status_unknown": (json.dumps(_good(status="crashed")), "status: 'crashed' is not one of"),
    "missing_run_id": (
        json.dumps({k: v for k, v in _good().items() if k != "run_id"}),
        "run_id: missing",
    ),
    "failed_without_error": (json.dumps(_good(status="failed")), "must say why"),
    "top_level_array": ("[1, 2, 3]", "a record is a JSON object, got list"),
    "not_json": ("this is not json", "not a JSON line"),
    "torn_line": (json.dumps(_good())[:40], "not a JSON line"),
    "binary_garbage": ("\x00\x01\x02\xff", "not a JSON line"),
}


@pytest.mark.parametrize("case", BAD_LINES, ids=str)
def test_report_refuses_one_bad_line_and_keeps_the_rest(tmp_path, capsys, case: str) -> None:
    line, why = BAD_LINES[case]
    good = _good()
    jsonl = tmp_path / RECORDS_FILE
    jsonl.write_text(json.dumps(good) + "\n" + line + "\n", encoding="utf-8")
    code, out, err = _cli(capsys, "report", "--results", str(tmp_path), "--out", str(tmp_path))
    assert code == 0
    refused = [x for x in err.splitlines() if x.startswith("refused:")]
    assert len(refused) == 1 and refused[0].startswith(f"refused: {jsonl}:2: "), err
    assert why in refused[0] and "Traceback" not in err
    report = (tmp_path / "REPORT.md").read_text()
    assert "injected heading" not in report and good["run_id"] not in err
    assert "| faster_rcnn_R_18_FPN_quick |" in report or "faster_rcnn_R_18_FPN_quick" in out


def test_interrupted_records_are_valid_and_reported(tmp_path, capsys) -> None:
    write_run(tmp_path, _good(status="interrupted", error="interrupted (Ctrl-C)"))
    records, problems = read_records([tmp_path])
    assert problems == [] and records[0]["status"] == "interrupted"


# ---- output folders and device names: checked before any work --------------------------------
def test_results_that_is_a_file(tmp_path, capsys) -> None:
    results = tmp_path / "results"
    results.write_text("not a folder")
    code, _, err = _cli(capsys, "infer", *TINY, "--results", str(results))
    assert code == 2
    _one_line(err, f"error: --results {results}: is a file, not a folder")


def test_results_below_a_file(tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    results = tmp_path / "file" / "results"
    code, _, err = _cli(capsys, "train", *TINY, "--results", str(results))
    assert code == 2
    _one_line(err, f"error: --results {results}: not a writable folder")


def test_records_jsonl_that_is_a_folder(tmp_path, capsys) -> None:
    (tmp_path / RECORDS_FILE).mkdir()
    code, _, err = _cli(capsys, "infer", *TINY, "--results", str(tmp_path))
    assert code == 2
    _one_line(err, f"{RECORDS_FILE} there is not a file")


def test_sweep_checks_results_first(tmp_path, capsys) -> None:
    results = tmp_path / "results"
    results.write_text("")
    code, _, err = _cli(
        capsys, "sweep", "--model", "faster_rcnn_R_18_FPN_quick", "--results", str(results)
    )
    assert code == 2
    _one_line(err, "is a file, not a folder")


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--out", "{file}"],
        ["data", "synth", "--images", "2", "--out", "{file}"],
    ],
    ids=["report", "data_synth"],
)
def test_out_that_is_a_file(tmp_path, capsys, argv: list[str]) -> None:
    target = tmp_path / "taken"
    target.write_text("x")
    write_run(tmp_path, _good())
    argv = [a.replace("{file}", str(target)) for a in argv]
    if argv[0] == "report":
        argv += ["--results", str(tmp_path)]
    code, _, err = _cli(capsys, *argv)
    assert code == 2
    _one_line(err, f"error: --out {target}: is a file, not a folder")


@pytest.mark.parametrize("verb", ["compare", "ops"])
def test_negative_threads_are_refused(capsys, verb: str) -> None:
    """compare took -1 for torch's default and ops passed it on to torch.set_num_threads."""
    with pytest.raises(SystemExit) as stop:
        main([verb, "--threads", "-1"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith("threads must be 0 or more, got '-1'")


@pytest.mark.parametrize(
    ("device", "needle"),
    [
        ("distributed", "unknown device 'distributed'"),
        ("backends", "unknown device 'backends'"),
        ("linalg", "unknown device 'linalg'"),
        ("cpu:x", "the card index after ':' must be a number"),
        ("cpu:7", "device 'cpu:7' requested but only 1 cpu card(s)"),
    ],
)
def test_device_names_are_real_backends(tmp_path, capsys, device: str, needle: str) -> None:
    argv = [a if a != "cpu" else device for a in TINY]
    code, _, err = _cli(capsys, "infer", *argv, "--results", str(tmp_path))
    assert code == 2
    _one_line(err, needle)


def test_unexpected_error_is_one_line_and_a_file(tmp_path, capsys, monkeypatch) -> None:
    """A bug in a verb (here a report verb that divides by zero) never prints its traceback."""
    monkeypatch.setattr(report_verb, "read_records", lambda sources: 1 / 0)
    code, _, err = _cli(capsys, "report", "--results", str(tmp_path), "--out", str(tmp_path))
    assert code == 1
    line = _one_line(err, "error: unexpected error: ZeroDivisionError: division by zero")
    saved = Path(line.split("full traceback in ")[1].rstrip(")"))
    assert "Traceback" in saved.read_text() and "1 / 0" in saved.read_text()
    saved.unlink()


# ---- lost or stale records ----------------------------------------------------------------------
def test_record_json_without_its_line_is_completed_once(tmp_path) -> None:
    """rank 0 stopped after renaming record.json, before appending to records.jsonl."""
    record = _good()
    run_dir = write_run(tmp_path, record)
    (tmp_path / RECORDS_FILE).write_text("")  # the append never happened
    assert complete_run(tmp_path, record["run_id"]) is True
    assert complete_run(tmp_path, record["run_id"]) is True  # the second look appends nothing
    records, problems = read_records([tmp_path])
    assert problems == [] and [r["run_id"] for r in records] == [record["run_id"]]
    assert json.loads((run_dir / "record.json").read_text()) == records[0]
    assert complete_run(tmp_path, "20990101T000000.000Z-nothere0") is False


def test_report_reads_a_run_missing_from_records_jsonl(tmp_path) -> None:
    """A single-process run killed between its two writes: no parent completes it, the report
    still finds it (once)."""
    listed, unlisted = _good(), _good()
    write_run(tmp_path, listed)
    write_run(tmp_path, unlisted)
    lines = (tmp_path / RECORDS_FILE).read_text().splitlines()
    (tmp_path / RECORDS_FILE).write_text(lines[0] + "\n")
    records, problems = read_records([tmp_path])
    assert problems == [] and [r["run_id"] for r in records] == [
        r["run_id"] for r in (listed, unlisted)
    ]


# ---- real processes: Ctrl-C and a killed rank ------------------------------------------------
def _kill_all(proc: subprocess.Popen) -> None:
    """A run must not outlive its test, whatever the test saw."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_signal_leaves_one_interrupted_record(sig, tmp_path, bench) -> None:
    """Ctrl-C or SIGTERM (torchrun, Slurm, docker stop), even in a process started with SIGINT
    ignored as background jobs are, ends in one line and an `interrupted` record."""
    results = tmp_path / "results"
    args = ["infer", *TINY, "--iters", "100000", "--warmup", "0"]
    proc = bench(args, results, preexec_fn=_ignore_sigint)
    try:
        while not any(results.rglob("*.jpg")):  # the run has started making its synthetic data
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.2)
        time.sleep(2)  # inside the run: data, model or measurement
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        _kill_all(proc)
    assert proc.returncode == 130, err[-2000:]
    how = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    assert _one_line(err) == f"error: interrupted ({how})"
    records, problems = read_records([results])
    assert problems == [] and [r["status"] for r in records] == ["interrupted"]
    assert records[0]["error"] == f"interrupted ({how})"


def test_killed_rank_is_one_line_and_one_record(tmp_path, worker_pid, bench) -> None:
    """Whenever rank 1 dies, the launcher's parent decides: one line and one failed record
    naming rank 1, its host and the signal, never rank 0's `interrupted` (torchrun's SIGTERM)
    nor its gloo error. When the kill lands does not matter, so the test has no race."""
    results = tmp_path / "results"
    args = ["train", *TINY, "--cards", "2", "--batch", "1", "--iters", "100000", "--warmup", "0"]
    proc = bench(args, results)
    try:
        deadline = time.monotonic() + 300
        victim = None
        while victim is None:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            victim = worker_pid(results, 1)
            time.sleep(0.2)
        time.sleep(3)  # most often inside the run; any moment must give the same answer
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    finally:
        _kill_all(proc)
    assert proc.returncode == 1
    lost = f"rank 1 on {socket.gethostname()} was killed by SIGKILL"
    assert _one_line(err) == f"error: {lost}"
    records, problems = read_records([results])
    assert problems == [] and len(records) == 1 and records[0]["status"] == "failed"
    assert records[0]["error"] == f"RankLost: {lost}"
    assert (results / "runs" / records[0]["run_id"] / "workers.log").is_file()


def test_sigterm_to_a_two_card_run_stops_its_workers(tmp_path, worker_pid, bench) -> None:
    """SIGTERM reaches the parent only (Ctrl-C reaches the whole process group): the parent
    passes it to torchrun, whose workers record the run as interrupted and exit."""
    results = tmp_path / "results"
    args = ["infer", *TINY, "--cards", "2", "--iters", "100000", "--warmup", "0"]
    proc = bench(args, results)
    try:
        deadline = time.monotonic() + 300
        while worker_pid(results, 0) is None or worker_pid(results, 1) is None:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.2)
        time.sleep(3)  # the workers are inside the run
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        _kill_all(proc)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "interrupted" in err, err[-3000:]
    assert worker_pid(results, 0) is None and worker_pid(results, 1) is None
    records, problems = read_records([results])
    assert problems == [] and [r["status"] for r in records] == ["interrupted"]
