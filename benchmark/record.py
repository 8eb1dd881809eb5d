"""The run record: its schema, its validation, and writes that a crash cannot tear.

A record is a plain JSON object; `Record` below is its schema (schema_version 1) and the only
place the field list lives. Every run, failed ones included, writes one:

    results/runs/<run_id>/record.json   (+ log.txt, config.yaml, env.json beside it)
    results/records.jsonl               one line per run, appended under a lock

Non-finite numbers (a NaN loss) are written as null so every line is strict JSON; the record's
status and error say what went wrong.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shlex
import sys
import types
import typing
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TypedDict

from benchmark.errors import UsageError
from rcnn.compat import OUT_OF_MEMORY_ERRORS
from rcnn.device import DeviceAdapter, DeviceError, get_adapter
from rcnn.device.reasons import missing_operator, reason
from rcnn.errors import interrupted_line
from rcnn.utils.env import collect_env, git_commit
from rcnn.utils.io import atomic_write_text

SCHEMA_VERSION = 1
# skipped: a sweep cell that cannot run; interrupted: stopped by Ctrl-C or a signal
Status = Literal["ok", "failed", "nan", "oom", "skipped", "interrupted"]
# verify: a device against the CPU; loader: the data loader alone; profile: where time goes
Mode = Literal["train", "infer", "verify", "comm", "loader", "profile"]
STATUSES: tuple[str, ...] = typing.get_args(Status)
MODES: tuple[str, ...] = typing.get_args(Mode)
RECORDS_FILE = "records.jsonl"


class Distribution(TypedDict):
    mean: float
    p50: float
    p90: float
    p99: float


class Spread(TypedDict):
    median: float
    min: float
    max: float
    iqr: float


class Dataset(TypedDict):
    name: str
    images: int | None
    fingerprint: str | None


class Host(TypedDict):
    rank: int
    node: int
    hostname: str


class Interconnect(TypedDict):
    """A short all-reduce before a multi-card window, at the gradient bucket size."""

    backend: str
    bytes: int
    busbw_gb_s: float
    latency_us: float


class CollectiveRow(TypedDict):
    """One collective at one size (the comm verb), as nccl-tests reports it."""

    op: str
    bytes: int
    time_us: float
    algbw_gb_s: float
    busbw_gb_s: float


class _ConductCounts(TypedDict):
    """What the timed window did that a real card punishes (benchmark.conduct); counts are the
    worst rank's, cards_touched lists every rank's."""

    iterations: int
    host_reads: int  # device-to-host reads during compute: item, tolist, cpu, .to("cpu") ...
    model_host_reads: int  # of host_reads, those the model's own code made (the rest: harness)
    syncs: int  # synchronizes besides the timer's own boundaries
    host_reads_per_iter: float  # (host_reads + syncs) / iterations
    h2d_copies: int  # batch tensors the prefetcher copied to the card
    h2d_pinned: int
    h2d_non_blocking: int
    recompiles: int  # graphs torch._dynamo compiled inside the window
    cards_touched: list[list[int]]  # per rank
    budget_broken: list[str]  # every budget a rank broke; empty when it kept them all


class Conduct(_ConductCounts, total=False):
    """The counts records before blocking ops were counted lack."""

    # ops a card blocks the host on (nonzero, boolean-mask indexing, unique, equal ...)
    sync_ops: int
    model_sync_ops: int
    model_reads_at: dict[str, int]  # the model's reads by file < modeling stage
    model_sync_ops_at: dict[str, int]
    lower_bound: bool  # counted at Python's calls: reads torch makes inside C++ are unseen


class LoaderRun(TypedDict):
    workers: int
    throughput_img_s: float
    first_batch_s: float | None  # worker start-up included


class Loader(TypedDict):
    """A loader benchmark: img/s per worker count, per-image decode and transform times."""

    runs: list[LoaderRun]
    pinned: bool  # batches pinned before the copy, as training copies them
    decode_ms: Distribution | None
    transform_ms: Distribution | None
    compute_img_s: float | None  # one card's compute-only rate it was compared with
    cards_fed: float | None  # best loader img/s / compute_img_s


class ProfileCategory(TypedDict):
    name: str
    ms: float
    share: float  # of the profiled window's wall time


class Profile(TypedDict):
    """Where the profiled steps' time went (mode profile)."""

    activities: list[str]  # torch.profiler activities: CPU, CUDA, PrivateUse1, ...
    categories: list[ProfileCategory]
    op_times: str  # card: the ops' kernel times on the card; host: their host times
    trace: str  # the Chrome trace, beside the record


class _Identity(TypedDict):
    """Fields every record must have, whatever its status."""

    schema_version: Literal[1]
    run_id: str
    created_utc: str
    status: Status
    mode: Mode
    model: str
    device_type: str
    cards: int
    precision: str


class Record(_Identity, total=False):
    """One run. Optional fields may be absent or null; see docs/ARCHITECTURE.md "The record"."""

    error: str | None  # why a run is not ok (failed, nan, oom, skipped)
    compile: bool | None  # the backbone ran torch.compile'd (MODEL.COMPILE)
    compile_shapes: str | None  # static (shape buckets) or dynamic; null when eager
    shape_buckets: list[str] | None  # "HxW" canvases batches were padded to and compiled for
    bucket_warmup_s: float | None  # compiling every bucket before the window (paused clock)
    channels_last: bool | None  # the backbone ran in channels-last memory format
    impl: str | None  # rcnn | torchvision
    work: str | None  # compare: what one timed iteration of the impl includes
    device_name: str | None
    nodes: int | None
    batch_per_card: int | None
    global_batch: int | None
    image_min_size: int | None
    image_max_size: int | None
    dataset: Dataset | None
    warmup_iters: int | None
    measured_iters: int | None
    repeats: int | None
    throughput_img_s: float | None
    throughput_spread: Spread | None
    throughput_whole_img_s: float | None  # the whole run: warm-up, data, steps, paused work
    throughput_compute_only_img_s: float | None  # the step on batches already on the card
    data_bound_share: float | None  # 1 - throughput_img_s / throughput_compute_only_img_s
    step_time_ms: Distribution | None
    latency_ms: Distribution | None
    data_time_share: float | None
    data_bound: bool | None
    first_iter_s: float | None
    first_iter_data_s: float | None  # its wait for the first batch (loader start-up included)
    first_iter_compute_s: float | None  # the rest: compilation, autotuning, caches
    conduct: Conduct | None
    peak_mem_mb: float | None
    accuracy: dict[str, float | None] | None
    time_to_accuracy_s: float | None
    final_loss: float | None
    ops: dict[str, str] | None
    env: dict[str, str | None] | None
    git_commit: str | None
    config_hash: str | None
    seed: int | None
    command: str | None
    notes: list[str] | None  # what the device could not say or do (null fields, refusals)
    compute_dtype: str | None  # the dtype the body's first conv ran in (float32, bfloat16, ...)
    sync: str | None  # iteration (a device sync per step) | window (only at the window's edges)
    data_time_covers: str | None  # what data time includes (loader, pinning, copy to the card)
    weights: str | None  # "random", or the checkpoint the run started from
    weights_id: str | None  # the report's key for them: "random", or file name and SHA-1 head
    workload: dict[str, str] | None  # what work ran (benchmark.workload.identity), part by part
    workload_id: str | None  # its key: equal ids, equal work
    peak_mem_kind: str | None  # what peak_mem_mb measured: process_rss, allocated_tensors, ...
    batch_shapes: dict[str, int] | None  # padded HxW of the measured batches -> how many
    gflops_per_image: float | None  # per image at the measured batches' sizes (flops.py)
    flop_sizes: dict[str, float] | None  # GFLOPs per image at each measured HxW
    achieved_tflops: float | None  # gflops_per_image x throughput_img_s / 1000, all cards
    peak_tflops: float | None  # one card's dense peak at the run's precision, when known
    flop_utilisation: float | None  # achieved_tflops / (cards x peak_tflops)
    agreement: dict[str, float | None] | None  # verify: device vs CPU fp32, one number each
    agreement_limits: dict[str, float] | None  # verify: the bound each number had to meet
    node_rank: int | None  # the node that wrote this record (0: the run's own record)
    hosts: list[Host] | None  # every rank's node and hostname
    collective_backend: str | None  # gloo, nccl, ... (host-staged: gloo on a card's copies)
    rendezvous: str | None  # MASTER_ADDR:MASTER_PORT where the ranks met
    interconnect: Interconnect | None
    collectives: list[CollectiveRow] | None  # the comm verb's table
    evaluator: str | None  # the COCO evaluator that scored accuracy: faster-coco-eval | pycocotools
    eval_s: float | None  # its wall time (results to COCO stats), outside every timed window
    mask_paste: str | None  # how masks were pasted for segm scoring: reference | subpixel
    loader: Loader | None  # mode loader
    profile: Profile | None  # mode profile


FIELDS: dict[str, Any] = typing.get_type_hints(Record)
REQUIRED: frozenset[str] = Record.__required_keys__


# -- validation ------------------------------------------------------------------------------


def _type_problems(value: Any, tp: Any, where: str) -> list[str]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        tries = [_type_problems(value, arm, where) for arm in args]
        if any(not t for t in tries):
            return []
        return next(t for arm, t in zip(args, tries, strict=True) if arm is not type(None))
    if tp is type(None):
        return [] if value is None else [f"{where}: expected null"]
    if origin is Literal:
        allowed = "|".join(str(a) for a in args)
        return [] if value in args else [f"{where}: {value!r} is not one of {allowed}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        return [p for i, v in enumerate(value) for p in _type_problems(v, args[0], f"{where}[{i}]")]
    if origin is dict or typing.is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        if origin is dict:
            return [p for k, v in value.items() for p in _type_problems(v, args[1], f"{where}.{k}")]
        hints = typing.get_type_hints(tp)
        missing = [f"{where}.{k}: missing" for k in sorted(tp.__required_keys__ - set(value))]
        return missing + [
            p
            for k, v in value.items()
            if k in hints
            for p in _type_problems(v, hints[k], f"{where}.{k}")
        ]
    # bool is an int to Python, never to a record
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, tp)
    return [] if ok else [f"{where}: expected {tp.__name__}, got {type(value).__name__}"]


# fields a report prints as table cells or headings: one line, no table syntax
CELL_TEXT = ("run_id", "model", "impl", "device_type", "device_name", "precision", "compute_dtype")
# free text that a report shows only by its first line
FREE_TEXT = ("error", "notes", "command")
# (field, lowest, highest) for numbers that have a meaning only in a range
RANGES: tuple[tuple[str, float, float], ...] = (
    ("cards", 1, math.inf),
    ("nodes", 1, math.inf),
    ("batch_per_card", 1, math.inf),
    ("global_batch", 1, math.inf),
    ("image_min_size", 1, math.inf),
    ("image_max_size", 1, math.inf),
    ("warmup_iters", 0, math.inf),
    ("measured_iters", 0, math.inf),
    ("repeats", 0, math.inf),
    ("throughput_img_s", 0, math.inf),
    ("throughput_whole_img_s", 0, math.inf),
    ("throughput_compute_only_img_s", 0, math.inf),
    ("data_time_share", 0, 1),
    ("first_iter_s", 0, math.inf),
    ("first_iter_data_s", 0, math.inf),
    ("first_iter_compute_s", 0, math.inf),
    ("peak_mem_mb", 0, math.inf),
    ("time_to_accuracy_s", 0, math.inf),
    ("eval_s", 0, math.inf),
    ("gflops_per_image", 0, math.inf),
    ("achieved_tflops", 0, math.inf),
    ("peak_tflops", 0, math.inf),
    ("flop_utilisation", 0, math.inf),
)
MAX_DEPTH = 6


def _leaves(value: Any, where: str, depth: int = 0):
    """(where, value) of every number and string in a JSON value; depth past MAX_DEPTH is a
    problem of its own (yielded as where, None with where ending in '...')."""
    if depth > MAX_DEPTH:
        yield f"{where}...", None
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{where}.{k}" if where else str(k), depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{where}[{i}]", depth + 1)
    else:
        yield where, value


def value_problems(record: dict) -> list[str]:
    """Beyond types: finite numbers in range, text on one line, cells without table syntax."""
    problems = []
    for where, value in _leaves(record, ""):
        if where.endswith("..."):
            return [f"{where[:-3]}: nested deeper than {MAX_DEPTH} levels"]
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{where}: not a finite number ({value})")
        elif (
            isinstance(value, str)
            and where.split(".")[0].split("[")[0] not in FREE_TEXT
            and any(ord(c) < 32 or ord(c) == 127 for c in value)
        ):
            problems.append(f"{where}: text with a line break or control character")
    for name in CELL_TEXT:
        if isinstance(record.get(name), str) and "|" in record[name]:
            problems.append(f"{name}: '|' is table syntax, not a name")
    for name, low, high in RANGES:
        value = record.get(name)
        typed = isinstance(value, int | float) and not _type_problems(value, FIELDS[name], name)
        if typed and math.isfinite(value) and not low <= value <= high:
            problems.append(f"{name}: {value} is outside [{low}, {high}]")
    for name in ("step_time_ms", "latency_ms", "accuracy"):
        values = record.get(name)
        if not isinstance(values, dict):
            continue
        high = 1.0 if name == "accuracy" else math.inf
        for key, value in values.items():
            if isinstance(value, int | float) and math.isfinite(value) and not 0 <= value <= high:
                problems.append(f"{name}.{key}: {value} is outside [0, {high}]")
    return problems


def validate(record: Any) -> list[str]:
    """Every problem with a record, one line each; an empty list means it is valid."""
    if not isinstance(record, dict):
        return [f"a record is a JSON object, got {type(record).__name__}"]
    problems = [f"{name}: missing" for name in sorted(REQUIRED - set(record))]
    for name, value in record.items():
        if name in FIELDS and not (value is None and name not in REQUIRED):
            problems += _type_problems(value, FIELDS[name], name)
    problems += value_problems(record)
    status = record.get("status")
    if status in STATUSES and status != "ok" and not record.get("error"):
        problems.append(f"error: a '{status}' record must say why")
    measures_images = record.get("mode") not in ("verify", "comm")
    if status == "ok" and measures_images and record.get("throughput_img_s") is None:
        problems.append("throughput_img_s: an 'ok' record must have it")
    return problems


# -- building records ------------------------------------------------------------------------


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by time (UTC, milliseconds), unique by a random suffix."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z-{uuid.uuid4().hex[:8]}"


def _command() -> str:
    argv0 = Path(sys.argv[0])
    # `python -m benchmark` shows up as .../benchmark/__main__.py
    head = ["python", "-m", argv0.parent.name] if argv0.name == "__main__.py" else [argv0.name]
    return shlex.join([*head, *sys.argv[1:]])


def _fill_device(record: dict, adapter: DeviceAdapter | None, card: int | None) -> None:
    """env, device_type and device_name from the adapter, without ever failing: a device that
    is not here leaves device_name empty, and what the adapter could not say is a note. The
    name is the card's this process uses (set_device's), unless `card` says which."""
    if adapter is None:
        try:
            adapter = get_adapter(record["device_type"] or "cpu")
        except DeviceError:
            adapter = get_adapter("cpu")  # env still describes this host
    record["device_type"] = record["device_type"] or adapter.name
    if card is None:
        card = adapter.card if adapter.card is not None else 0
    try:
        record["env"] = record["env"] or collect_env(adapter)
        if (
            record["device_name"] is None
            and record["device_type"] == adapter.name
            and adapter.is_available()
            and card < adapter.device_count()
        ):
            record["device_name"] = adapter.card_name(card)
    except Exception as err:  # a plug-in fails in any way; the record must still be written
        adapter.note(f"{adapter.name}: describing the device failed ({reason(err)})")
    notes = [n for n in adapter.notes() if n not in (record["notes"] or [])]
    if notes:
        record["notes"] = [*(record["notes"] or []), *notes]


def new_record(
    adapter: DeviceAdapter | None = None, card: int | None = None, **fields: Any
) -> dict:
    """A record with every schema field: run_id, created_utc, env, git_commit and defaults
    filled, then `fields` on top. The adapter (else the one named by device_type, else cpu)
    gives env, device_type and, for `card` when it is here, device_name."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ValueError(f"not record fields: {', '.join(unknown)}")
    now = datetime.now(timezone.utc)
    record: dict[str, Any] = dict.fromkeys(FIELDS)
    record.update(
        schema_version=SCHEMA_VERSION,
        run_id=new_run_id(now),
        created_utc=now.isoformat(timespec="milliseconds"),
        status="ok",
        impl="rcnn",
        nodes=1,
        cards=1,
        command=_command(),
    )
    record.update(fields)
    _fill_device(record, adapter, card)
    if "git_commit" not in fields:
        record["git_commit"] = git_commit()
    return record


def status_of(exc: BaseException) -> str:
    """interrupted for Ctrl-C, oom for out-of-memory errors (any backend's), nan for
    non-finite losses, else failed."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, OUT_OF_MEMORY_ERRORS):
        return "oom"
    if "out of memory" in str(exc).lower():
        return "oom"  # vendor plug-ins raise a plain RuntimeError with this text
    if isinstance(exc, FloatingPointError):
        return "nan"  # the engine's non-finite-loss error derives from FloatingPointError
    return "failed"


def failed_record(exc: BaseException, **fields: Any) -> dict:
    """The record of a run that raised: status from `status_of`, error from the exception."""
    error = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    if missing_operator(exc) is not None:
        error = reason(exc)  # the operator's name, not torch's many-line dispatcher dump
    if isinstance(exc, KeyboardInterrupt):
        error = interrupted_line(exc)  # which signal stopped it: Ctrl-C or SIGTERM
    return new_record(**{**fields, "status": status_of(exc), "error": error})


# -- writing ---------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def append_line(path: Path, line: str) -> None:
    """Append one line whole: under an exclusive lock, in one write to an O_APPEND file."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    lock = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process is killed
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a line torn before locks existed stays on its own line
            written = os.write(fd, data)
            while written < len(data):  # regular files write whole; the lock covers the rest
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        os.close(lock)


def check_writable_dir(folder: str | Path, option: str) -> Path:
    """Before any work: `folder` (given as `option`) is, or becomes, a folder we can write."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path}: is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"{option} {path}: not a writable folder ({err.strerror})") from None
    return path


def check_results_dir(results_dir: str | Path) -> Path:
    """Before any work: the results folder and its runs/ are writable and records.jsonl is a
    file, so no measurement is lost to a folder found unwritable at the end."""
    results = check_writable_dir(results_dir, "--results")
    if (results / RECORDS_FILE).exists() and not (results / RECORDS_FILE).is_file():
        raise UsageError(f"--results {results}: {RECORDS_FILE} there is not a file")
    check_writable_dir(results / "runs", "--results")
    return results


def complete_run(results_dir: str | Path, run_id: str) -> bool:
    """Whether run `run_id` has its line in records.jsonl, appending the line from its
    record.json when a writer stopped between the two (killed after the rename)."""
    results = Path(results_dir)
    jsonl = results / RECORDS_FILE
    if jsonl.is_file():
        with open(jsonl, encoding="utf-8", errors="replace") as f:
            if any(f'"run_id": "{run_id}"' in line for line in f):
                return True
    written = results / "runs" / run_id / "record.json"
    if not written.is_file():
        return False
    record = json.loads(written.read_text(encoding="utf-8"))
    append_line(jsonl, json.dumps(record, allow_nan=False))
    return True


def drop_run(results_dir: str | Path, run_id: str) -> None:
    """Remove run `run_id`'s lines from records.jsonl (under its lock, by a rename), so that
    the record written next for the same run replaces them."""
    jsonl = Path(results_dir) / RECORDS_FILE
    if not jsonl.is_file():
        return
    lock = os.open(f"{jsonl}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lines = jsonl.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        kept = [line for line in lines if f'"run_id": "{run_id}"' not in line]
        if len(kept) != len(lines):
            atomic_write_text(jsonl, "".join(kept))
    finally:
        os.close(lock)


def write_run(
    results_dir: str | Path,
    record: dict,
    log_text: str | None = None,
    config_text: str | None = None,
) -> Path:
    """Write a run's folder and append its line to records.jsonl; return the folder."""
    record = _finite(record)
    problems = validate(record)
    if problems:
        raise ValueError(f"record {record.get('run_id')} is invalid: {'; '.join(problems)}")
    results = Path(results_dir)
    node = record.get("node_rank") or 0  # another node's own record, beside (shared disk)
    run_dir = results / "runs" / (record["run_id"] + (f".node{node}" if node else ""))
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "record.json", json.dumps(record, indent=2, allow_nan=False) + "\n")
    atomic_write_text(run_dir / "env.json", json.dumps(record.get("env"), indent=2) + "\n")
    if log_text is not None:
        atomic_write_text(run_dir / "log.txt", log_text)
    if config_text is not None:
        atomic_write_text(run_dir / "config.yaml", config_text)
    append_line(results / RECORDS_FILE, json.dumps(record, allow_nan=False))
    return run_dir


def save_run(
    results_dir: str | Path,
    fields: dict,
    exc: BaseException | None = None,
    adapter: DeviceAdapter | None = None,
    log_text: str | None = None,
    config_text: str | None = None,
) -> tuple[Path | None, str | None]:
    """Write the record of a run (a failed one when it raised `exc`) and never raise.

    When the full record cannot be built or written, a failed record with the run's identity is
    written instead; its error keeps the run's own error first, then why the record failed.
    Returns (the run folder or None, why the full record could not be written or None)."""
    try:
        if exc is not None:
            record = failed_record(exc, adapter=adapter, **fields)
        else:
            record = new_record(adapter=adapter, **fields)
        return write_run(results_dir, record, log_text, config_text), None
    except Exception as err:  # a record problem must not hide the run's result
        why = f"writing the record failed ({type(err).__name__}: {err})"
    own = f"{type(exc).__name__}: {exc}; " if exc is not None else "the run finished, but "
    now = datetime.now(timezone.utc)
    minimal: dict[str, Any] = dict.fromkeys(FIELDS)
    minimal.update(
        schema_version=SCHEMA_VERSION,
        run_id=fields.get("run_id") or new_run_id(now),
        created_utc=now.isoformat(timespec="milliseconds"),
        status=status_of(exc) if exc is not None else "failed",
        error=own + why,
        command=fields.get("command"),
        **{k: fields.get(k) for k in ("mode", "model", "device_type", "cards", "precision")},
    )
    try:
        return write_run(results_dir, minimal, log_text), why
    except Exception as err:
        return None, f"{why}; the short record failed too ({type(err).__name__}: {err})"


# -- reading ---------------------------------------------------------------------------------


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _short(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def read_records(paths: list[str | Path]) -> tuple[list[dict], list[str]]:
    """Valid records from results folders (their records.jsonl) or .jsonl files, in order,
    and one 'file:line: why' per line refused; a bad line never stops the rest."""
    records: list[dict] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in map(Path, paths):
        file = path / RECORDS_FILE if path.is_dir() else path
        if not file.is_file():
            problems.append(f"{file}: not found")
            continue
        with open(file, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{file}:{lineno}"
                try:
                    record = json.loads(line.rstrip("\n"), parse_constant=_no_constant)
                except json.JSONDecodeError as err:
                    problems.append(f"{where}: not a JSON line ({err.msg})")
                    continue
                except (ValueError, RecursionError) as err:  # NaN, 5000 digits, 10^5 brackets
                    problems.append(f"{where}: not a usable JSON line ({_short(err)})")
                    continue
                bad = validate(record)
                if bad:
                    problems.append(f"{where}: {'; '.join(bad)}")
                elif _node_key(record) in seen:
                    problems.append(
                        f"{where}: run {record['run_id']} already read at {seen[_node_key(record)]}"
                    )
                else:
                    seen[_node_key(record)] = where
                    records.append(record)
        if path.is_dir():
            _add_unlisted_runs(path, records, seen)
    return records, problems


def _node_key(record: dict) -> str:
    """A run's records: one per run id, and one more per other node that failed on its own."""
    node = record.get("node_rank") or 0
    return record["run_id"] if node == 0 else f"{record['run_id']} node {node}"


def _add_unlisted_runs(results: Path, records: list[dict], seen: dict[str, str]) -> None:
    """Runs whose writer stopped between record.json and its records.jsonl line still count."""
    for written in sorted(results.glob("runs/*/record.json")):
        try:
            record = json.loads(written.read_text(encoding="utf-8"), parse_constant=_no_constant)
        except (OSError, ValueError, RecursionError):
            continue  # a run folder's own file; the run's line, if any, was judged above
        if not validate(record) and _node_key(record) not in seen:
            seen[_node_key(record)] = str(written)
            records.append(record)
