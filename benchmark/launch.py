"""Run one measured verb (train, infer) here, or on N cards under torchrun, and record it.

    python -m benchmark train --model M --cards 4        # the parent: checks, then launches
      -> python -m torch.distributed.run --nproc-per-node 4 --standalone \\
             -m benchmark train --model M --cards 4 ... --run-id ID --worker

The parent resolves the device and precision, builds the workload (config and data) so that
user errors stop before any process starts, then starts torchrun with its own environment (the
adapter's visible-devices variable included). Workers measure; rank 0 writes the one record
under the run id the parent chose. A run that dies before rank 0 could write still gets a
failed record, from the parent. Multi-node: the same command on every node with --nodes,
--node-rank, --master-addr and --master-port.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

from benchmark.errors import USER_ERRORS, UsageError
from benchmark.record import check_results_dir, complete_run, new_run_id, save_run, status_of
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


def _rank() -> int:
    """This process's global rank, known from torchrun's environment before any group exists."""
    return int(os.environ.get("RANK", "0"))


class _LogCapture:
    """The run's log: what the `rcnn` loggers say on this process, kept for log.txt."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.handler = logging.StreamHandler(self.buffer)
        self.handler.setFormatter(
            logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s")
        )

    def start(self) -> None:
        setup_logger("rcnn", None, _rank())
        if _rank() == 0:
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
    workload_mode: str | None = None,
) -> int:
    """The lifecycle of one measured run; see the module docstring. Returns the exit code.

    `options`: the verb's own option names (carried to workers); `extra`: its config overrides;
    `check`: its argument checks (raise UsageError); `workload_mode`: the work the verb measures
    when it is not the verb itself (loader, profile: train or infer); the record's mode is the
    verb."""
    options, extra = tuple(options), tuple(extra)
    args.run_id = args.run_id or new_run_id()
    results = check_results_dir(args.results)
    run_dir = results / "runs" / args.run_id
    fields: dict = {
        "run_id": args.run_id,
        "mode": verb,
        "model": Path(args.model).stem,
        "device_type": args.device.partition(":")[0],
        "precision": args.precision,
        "cards": args.cards if isinstance(args.cards, int) else 1,
        "nodes": args.nodes,
        "batch_per_card": args.batch,
        "global_batch": args.batch * (args.cards if isinstance(args.cards, int) else 1),
        "command": command_line(verb, args, options),
    }
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
        fields.update(cards=world, global_batch=args.batch * world)
        if world > 1 and ":" in args.device:
            raise UsageError(
                f"--device {args.device}: a multi-card run picks its cards by "
                f"rank; name the device without an index, e.g. {adapter.name}"
            )
        workload = build_workload(workload_mode or verb, args, cards, run_dir, extra)
        fields.update(workload.record_fields(), mode=verb)
        if world > 1 and not args.worker:
            args.cards = cards
            return _launch(verb, args, options, fields)
        if args.worker and comm.launched_by_torchrun():
            expected = int(os.environ["WORLD_SIZE"])
            if expected != world:
                raise UsageError(f"torchrun started {expected} processes for {world} cards")
        measured = measure(workload, args)
        comm.shutdown()
    except (Exception, KeyboardInterrupt) as exc:
        status = status_of(exc)
        if isinstance(exc, (*USER_ERRORS, KeyboardInterrupt)):
            message = interrupted_line(exc) if isinstance(exc, KeyboardInterrupt) else one_line(exc)
        elif _rank() == 0:  # the traceback goes to the run's log.txt, never to the console
            log.buffer.write(traceback.format_exc())
            message = f"{type(exc).__name__}: {one_line(exc)} (traceback in {run_dir / 'log.txt'})"
        else:  # only rank 0 keeps a log: another rank's traceback gets a file of its own
            message = unexpected_message(exc, f"rank{_rank()}", str(run_dir))
        if _rank() == 0:
            # the run's own error is said first, whatever happens to its record
            print(f"error: {message}", file=sys.stderr)
            _, why = save_run(results, fields, exc, adapter, log.text())
            if why:
                print(f"error: {why}", file=sys.stderr)
        else:
            print(f"error (rank {_rank()}): {message}", file=sys.stderr)
        return EXIT["interrupted"] if status == "interrupted" else exit_code(status, exc)
    if measured is None:  # not rank 0: rank 0 writes the record
        return 0
    record = {**fields, **measured}
    _, why = save_run(results, record, None, adapter, log.text(), workload.cfg.dump())
    if why:
        print(f"error: {why}", file=sys.stderr)
        return EXIT["failed"]
    print(summary_line(record))
    if record.get("status", "ok") != "ok":  # measured, but not what was asked (e.g. precision)
        print(f"error: {record.get('error')}", file=sys.stderr)
        return EXIT.get(record["status"], EXIT["failed"])
    return 0


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
    interrupted = False
    with open(workers_log, "a", encoding="utf-8") as kept:
        try:
            _split_worker_stderr(proc.stderr, kept)
        except KeyboardInterrupt as err:  # a terminal's Ctrl-C reached torchrun too
            interrupted = True
            if isinstance(err, StopSignal):  # a SIGTERM did not: pass it on
                proc.send_signal(err.signum)
            _split_worker_stderr(proc.stderr, kept)
        code = proc.wait()
    if args.node_rank != 0 or complete_run(args.results, args.run_id):
        return EXIT["interrupted"] if interrupted else code
    # the workers died before rank 0 could record: the parent says so, in one line
    if interrupted:
        exc: BaseException = KeyboardInterrupt("interrupted before rank 0 could record")
    else:
        exc = RuntimeError(
            f"torchrun exited with code {code} before rank 0 wrote the record "
            f"(a worker was killed or crashed); the workers' stderr is in {workers_log}"
        )
    print(f"error: {one_line(exc)}", file=sys.stderr)
    _, why = save_run(args.results, fields, exc)
    if why:
        print(f"error: {why}", file=sys.stderr)
    return EXIT["interrupted"] if interrupted else (code or EXIT["failed"])


def _split_worker_stderr(stream, kept) -> None:
    """The workers' own one-line errors go to the console; everything else (torchrun's and
    gloo's tracebacks, warnings) to the run's workers.log."""
    for line in stream:
        if line.startswith("error"):
            sys.stderr.write(line)
        else:
            kept.write(line)


def summary_line(record: dict) -> str:
    """One line per run: what ran, img/s, p50 latency (or step time), AP; for verify, how
    well the device agreed with the CPU."""
    head = (
        f"{record['mode']} {record['model']} on {record['cards']} x {record['device_type']} "
        f"{record['precision']}"
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
