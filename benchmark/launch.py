"""Run one measured verb (train, infer) here, or on N cards under torchrun, and record it.

    python -m benchmark train --model M --cards 4        # the parent: checks, then launches
      -> python -m torch.distributed.run --nproc-per-node 4 --standalone \\
             -m benchmark train --model M --cards 4 ... --run-id ID --worker

The parent resolves the device and precision, builds the workload (config and data) so that
user errors stop before any process starts, then starts torchrun with its own environment (the
adapter's visible-devices variable included). Workers measure; rank 0 writes the one record
under the run id the parent chose. The parent decides how the run ended: stopped itself ->
interrupted; a rank killed -> failed, naming the rank, its host and the signal, over whatever a
surviving worker wrote; a run that died before rank 0 could write still gets a failed record.
Multi-node: the same command on every node with --nodes, --node-rank, --master-addr and
--master-port.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

from benchmark.errors import USER_ERRORS, UsageError
from benchmark.record import (
    check_results_dir,
    complete_run,
    drop_run,
    new_run_id,
    save_run,
    status_of,
)
from benchmark.workload.args import check_counts, command_line, to_argv
from benchmark.workload.build import Workload, build_workload, cards_per_node
from rcnn.device import resolve
from rcnn.errors import interrupted_line, one_line, unexpected_message
from rcnn.utils import comm
from rcnn.utils.logger import setup_logger
from rcnn.utils.signals import StopSignal

EXIT = {"failed": 1, "user": 2, "nan": 3, "oom": 4, "interrupted": 130}

logger = logging.getLogger("rcnn.bench")

# measure(workload, args) -> record fields on rank 0, None on other ranks
Measure = Callable[[Workload, argparse.Namespace], "dict | None"]
# prepare(verb, args, cards per node, run folder, config overrides) -> what the run works on
Prepare = Callable[[str, argparse.Namespace, int, Path, tuple], Workload]


def torchrun_command(
    verb: str,
    argv: list[str],
    cards: int,
    nodes: int,
    node_rank: int,
    master_addr: str,
    master_port: int,
) -> list[str]:
    """The torchrun command line that starts `cards` workers of `verb` on this node."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(cards)]
    if nodes == 1:
        cmd.append("--standalone")  # a free local port: concurrent runs never collide
    else:
        cmd += [
            "--nnodes",
            str(nodes),
            "--node-rank",
            str(node_rank),
            "--master-addr",
            master_addr,
            "--master-port",
            str(master_port),
        ]
    return [*cmd, "-m", "benchmark", verb, *argv, "--worker"]


def worker_env(cards: int) -> dict[str, str]:
    """The workers' environment: ours (visible devices included), threads split over cards."""
    env = dict(os.environ)
    # torchrun would pin every worker to one thread; a CPU "card" gets its share of the cores
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // cards)))
    return env


class _LogCapture:
    """The run's log: what the `rcnn` loggers say on this process, kept for log.txt."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.handler = logging.StreamHandler(self.buffer)
        self.handler.setFormatter(
            logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s")
        )

    def start(self) -> None:
        setup_logger("rcnn", None, comm.torchrun_rank())
        if comm.torchrun_rank() == 0:
            logging.getLogger("rcnn").addHandler(self.handler)

    def text(self) -> str:
        return self.buffer.getvalue()


def warn_if_busy() -> None:
    """Say so when other work competes for the host: its timings (a CPU run's above all, and
    every run's data loading) are then not reliable."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > cores:
        logger.warning(
            "the host is busy (1-minute load %.1f on %d cores): timings may be unreliable",
            load,
            cores,
        )


def exit_code(status: str, exc: BaseException) -> int:
    """The process exit status of a run that ended in `status` through `exc`."""
    if isinstance(exc, USER_ERRORS):
        return EXIT["user"]
    return EXIT.get(status, EXIT["failed"])


def execute(
    verb: str,
    args: argparse.Namespace,
    measure: Measure,
    options: Iterable[str] = (),
    extra: Iterable[str] = (),
    check: Callable[[argparse.Namespace], None] | None = None,
    prepare: Prepare = build_workload,
    workload_mode: str | None = None,
) -> int:
    """The lifecycle of one measured run; see the module docstring. Returns the exit code.

    `options`: the verb's own option names (carried to workers); `extra`: its config overrides;
    `check`: its argument checks (raise UsageError); `prepare`: what the run works on (the
    model's workload, or the comm verb's message sizes); `workload_mode`: the work the verb
    measures when it is not the verb itself (loader, profile: train or infer); the record's
    mode is the verb."""
    options, extra = tuple(options), tuple(extra)
    if args.run_id is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.run_id):
        raise UsageError(f"--run-id {args.run_id!r}: letters, digits, '.', '_' and '-' only")
    args.run_id = args.run_id or new_run_id()
    results = check_results_dir(args.results)
    run_dir = results / "runs" / args.run_id
    fields: dict = {
        "run_id": args.run_id,
        "mode": verb,
        "model": Path(args.model).stem if args.model else verb,
        "device_type": args.device.partition(":")[0],
        "precision": args.precision,
        "cards": args.cards if isinstance(args.cards, int) else 1,
        "nodes": args.nodes,
        "node_rank": args.node_rank if args.nodes > 1 else None,
        "batch_per_card": args.batch,
        "global_batch": args.batch
        and args.batch * (args.cards if isinstance(args.cards, int) else 1),
        "command": command_line(verb, args, options),
    }
    rank = comm.torchrun_rank()
    log = _LogCapture()
    log.start()
    warn_if_busy()
    adapter = None
    try:
        check_counts(args)
        if check is not None:
            check(args)
        adapter, _ = resolve(args.device, args.precision)
        fields["device_type"] = adapter.name
        cards = cards_per_node(args, adapter)
        world = cards * args.nodes
        fields.update(cards=world, global_batch=args.batch and args.batch * world)
        if world > 1 and ":" in args.device:
            raise UsageError(
                f"--device {args.device}: a multi-card run picks its cards by "
                f"rank; name the device without an index, e.g. {adapter.name}"
            )
        workload = prepare(workload_mode or verb, args, cards, run_dir, extra)
        fields.update(workload.record_fields(), mode=verb)
        if world > 1 and not args.worker:
            args.cards = cards
            return _launch(verb, args, options, fields)
        if args.worker and comm.launched_by_torchrun():
            expected = int(os.environ["WORLD_SIZE"])
            if expected != world:
                raise UsageError(f"torchrun started {expected} processes for {world} cards")
        measured = measure(workload, args)
        fields.update(_group_fields(adapter))
        comm.shutdown()
    except (Exception, KeyboardInterrupt) as exc:
        fields.update(_group_fields(adapter))
        lost = comm.lost_peer(exc)
        if lost is not None:  # the transport's text does not say who went away; this does
            exc = RankLost(lost)
        if isinstance(exc, KeyboardInterrupt) and args.worker and comm.launched_by_torchrun():
            # torchrun SIGTERMs every worker when one dies as when it is stopped: the
            # launcher, which knows which, records the run (this line goes to workers.log)
            print(
                f"rank {rank}: {interrupted_line(exc)}, by torchrun",
                file=sys.stderr,
            )
            return EXIT["interrupted"]
        status = status_of(exc)
        if isinstance(exc, (*USER_ERRORS, KeyboardInterrupt, RankLost)):
            message = interrupted_line(exc) if isinstance(exc, KeyboardInterrupt) else one_line(exc)
        elif rank == 0:  # the traceback goes to the run's log.txt, never to the console
            log.buffer.write(traceback.format_exc())
            message = f"{type(exc).__name__}: {one_line(exc)} (traceback in {run_dir / 'log.txt'})"
        else:  # only rank 0 keeps a log: another rank's traceback gets a file of its own
            message = unexpected_message(exc, f"rank{rank}", str(run_dir))
        if rank == 0:
            # the run's own error is said first, whatever happens to its record
            print(f"error: {message}", file=sys.stderr)
            _, why = save_run(results, fields, exc, adapter, log.text())
            if why:
                print(f"error: {why}", file=sys.stderr)
        else:
            print(f"error (rank {rank}): {message}", file=sys.stderr)
        return EXIT["interrupted"] if status == "interrupted" else exit_code(status, exc)
    if measured is None:  # not rank 0: rank 0 writes the record
        return 0
    record = {**fields, **measured}
    config = workload.cfg.dump() if workload.cfg is not None else None
    _, why = save_run(results, record, None, adapter, log.text(), config)
    if why:
        print(f"error: {why}", file=sys.stderr)
        return EXIT["failed"]
    print(summary_line(record))
    if record.get("status", "ok") != "ok":  # measured, but not what was asked (e.g. precision)
        print(f"error: {record.get('error')}", file=sys.stderr)
        return EXIT.get(record["status"], EXIT["failed"])
    return 0


def _group_fields(adapter) -> dict:
    """A multi-process run's hosts (every rank's node and hostname), backend and rendezvous."""
    if not comm.is_dist() or adapter is None:
        return {}
    return {
        "hosts": comm.peers(),
        "collective_backend": comm.collective_backend(adapter),
        "rendezvous": comm.rendezvous_endpoint(),
    }


def _launch(
    verb: str,
    args: argparse.Namespace,
    options: tuple[str, ...],
    fields: dict,
) -> int:
    cmd = torchrun_command(
        verb,
        to_argv(args, options),
        args.cards,
        args.nodes,
        args.node_rank,
        args.master_addr,
        args.master_port,
    )
    logger.info("launching %d worker(s): %s", args.cards, " ".join(cmd))
    run_dir = Path(args.results) / "runs" / args.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    workers_log = run_dir / "workers.log"
    proc = subprocess.Popen(
        cmd,
        env=worker_env(args.cards),
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    stop: KeyboardInterrupt | None = None
    said: list[str] = []  # the workers' own one-line errors, held until the run's end is known
    report: list[str] = []  # everything else: torchrun's failure report, tracebacks
    with open(workers_log, "a", encoding="utf-8") as kept:
        try:
            _split_worker_stderr(proc.stderr, kept, said, report)
        except KeyboardInterrupt as err:  # a terminal's Ctrl-C reached torchrun too
            stop = err
            if isinstance(err, StopSignal):  # a SIGTERM did not: pass it on
                proc.send_signal(err.signum)
            _split_worker_stderr(proc.stderr, kept, said, report)
        code = proc.wait()
        kept.writelines(said)
    return conclude_run(
        args,
        fields,
        code,
        stop,
        parse_failures("".join(report), socket.gethostname()),
        said,
        workers_log,
    )


def conclude_run(
    args: argparse.Namespace,
    fields: dict,
    code: int,
    stop: KeyboardInterrupt | None,
    failures: list[Failure],
    said: list[str],
    workers_log: Path,
) -> int:
    """The run's final status, decided here: only the launcher knows why its workers ended.

    Stopped itself -> interrupted (a record the workers finished stands). A rank killed by a
    signal -> failed, naming it, over whatever a survivor wrote (torchrun SIGTERMs survivors,
    and a survivor's collective fails first with the transport's text). A rank that exited
    with an error -> its own record stands, else a failed one naming the rank."""
    results, run_id = args.results, args.run_id
    recorded = args.node_rank == 0 and complete_run(results, run_id)
    killed = [f for f in failures if f.signal]
    exc: BaseException | None = None
    if stop is not None:
        if not recorded:
            exc = stop
    elif killed:
        exc = RankLost(killed[0].describe())
    elif code != 0 and not recorded:
        exc = RankLost(_exited(failures, said, code, workers_log))
    elif code == 0 and args.node_rank == 0 and not recorded:
        exc = RuntimeError(f"the workers ended well but rank 0 wrote no record ({workers_log})")
    status = EXIT["interrupted"] if stop is not None else code
    if exc is None:
        sys.stderr.writelines(said)  # the workers' records stand, and so do their lines
        return status
    print(f"error: {interrupted_line(exc) if stop else one_line(exc)}", file=sys.stderr)
    drop_run(results, run_id)  # a worker's record of the same run says less than this one
    _, why = save_run(results, fields, exc)
    if why:
        print(f"error: {why}", file=sys.stderr)
    return status or EXIT["failed"]


def _exited(failures: list[Failure], said: list[str], code: int, workers_log: Path) -> str:
    """Why torchrun failed when no rank was killed: the first failed rank and its own line."""
    if not failures:
        return f"torchrun exited with code {code} before rank 0 wrote the record ({workers_log})"
    first = failures[0]
    own = next((line for line in said if f"(rank {first.rank})" in line), "")
    detail = own.split(":", 1)[1].strip() if own else f"its stderr is in {workers_log}"
    return f"{first.describe()}: {detail}"


class RankLost(RuntimeError):
    """A worker process of the run died or failed; the message names its rank and node."""


@dataclasses.dataclass(frozen=True)
class Failure:
    """One failed worker from torchrun's failure report."""

    rank: int
    host: str
    exitcode: int

    @property
    def signal(self) -> str | None:
        if self.exitcode >= 0:
            return None
        try:
            return signal.Signals(-self.exitcode).name
        except ValueError:
            return f"signal {-self.exitcode}"

    def describe(self) -> str:
        if self.signal:
            return f"rank {self.rank} on {self.host} was killed by {self.signal}"
        return f"rank {self.rank} on {self.host} exited with code {self.exitcode}"


_FAILURE_LINE = re.compile(r"^\s*(rank|exitcode)\s*:\s*(-?\d+)", re.MULTILINE)


def parse_failures(report: str, host: str) -> list[Failure]:
    """The failed ranks in torchrun's ChildFailedError report (its format since torch 1.9:
    `rank : R (local_rank: L)`, `exitcode : C (pid: P)` per failure), root cause first as
    torchrun lists it last. `host`: this node's name as the records write it (torchrun's
    own `host` line is its FQDN, often just 'localhost')."""
    found: list[Failure] = []
    rank: str | None = None
    for key, value in _FAILURE_LINE.findall(report):
        if key == "rank":
            rank = value
        elif rank is not None:
            found.append(Failure(int(rank), host, int(value)))
            rank = None
    unique = list(dict.fromkeys(found))  # torchrun may print the report twice
    return unique[-1:] + unique[:-1]


def _split_worker_stderr(stream, kept, said: list[str], report: list[str]) -> None:
    """The workers' own one-line errors are held for the console; everything else (torchrun's
    report and gloo's tracebacks, warnings) goes to the run's workers.log."""
    for line in stream:
        if line.startswith("error"):
            said.append(line)
        else:
            kept.write(line)
            report.append(line)


def summary_line(record: dict) -> str:
    """One line per run: what ran, img/s, p50 latency (or step time), AP; for verify, how
    well the device agreed with the CPU."""
    head = (
        f"{record['mode']} {record['model']} on {record['cards']} x {record['device_type']} "
        f"{record['precision']}"
    )
    if record.get("collectives"):  # the comm verb: its busbw table under the head
        from benchmark.commands.comm import table

        return f"{head}: {record.get('status', 'ok')} [{record['run_id']}]\n" + table(
            record["collectives"]
        )
    if record.get("agreement") is not None:
        numbers = ", ".join(f"{k} {v:.4g}" for k, v in record["agreement"].items() if v is not None)
        return f"{head} vs cpu fp32: {record.get('status', 'ok')}: {numbers} [{record['run_id']}]"
    latency = record.get("latency_ms") or record.get("step_time_ms") or {}
    kind = "latency" if record.get("latency_ms") else "step"
    ap = (record.get("accuracy") or {}).get("bbox_ap")
    ap_text = f", bbox AP {ap:.3f}" if ap is not None else ""
    return (
        f"{head}, batch {record.get('batch_per_card')}/card: "
        f"{record['throughput_img_s']:.2f} img/s, p50 {kind} {latency.get('p50', 0):.1f} ms"
        f"{ap_text} [{record['run_id']}]"
    )
