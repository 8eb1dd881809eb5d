"""Tables and plots from run records alone: REPORT.md and plots/*.png.

A cell (one model, implementation, device, batch per card, workload, card count and precision)
shows the median over every ok record of that cell, with the number of records beside it. The
workload column holds every field that changes the work (image size, dataset and fingerprint,
weights, iterations and warm-up, sync policy, compile and channels_last): records that differ
in any of them are never merged. Nothing here is
measured or estimated: a cell without records is "-".

    speedup over fp32    = throughput(precision) / throughput(fp32), same row
    scaling efficiency   = throughput(N cards) / (N * throughput(1 card)), same batch per card
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from benchmark.measure import DATA_BOUND_SHARE
from benchmark.workload.identity import identity
from rcnn.device import PRECISIONS
from rcnn.utils.io import atomic_write_text

# what a training row compares across
ROW = ["model", "impl", "device_name", "batch_per_card", "workload"]
ACCURACY = ["bbox_ap", "bbox_ap50", "bbox_ap75", "segm_ap"]
PLOT_PREFIXES = ("throughput_vs_cards_", "latency_")
LABELS = {"device_name": "device", "batch_per_card": "batch/card"}
# numbers older records may lack: a missing column reads as NaN, never as a dropped cell
OPTIONAL_NUMBERS = ("peak_mem_mb", "gflops_per_image", "achieved_tflops", "flop_utilisation")


def frame(records: list[dict]) -> pd.DataFrame:
    """One row per record; nested objects flattened to 'latency_ms.p50', 'env.torch', ...

    Missing cell keys become "-" so that groups never silently drop them."""
    df = pd.json_normalize(records, max_level=1)
    for col in ["impl", "device_name", "batch_per_card", "error"]:
        if col not in df:
            df[col] = None
    if records:
        df["device_name"] = [device_label(r) for r in records]
    for col in ["impl", "device_name", "batch_per_card"]:
        df[col] = [_text(v) for v in df[col]]
    df["workload"] = [_workload(r) for r in records] if records else []
    return df


def device_label(record: dict) -> str | None:
    """The card's name, or for a card that has none (a plug-in without get_device_name) its
    device type, so that its rows still say which device they ran on."""
    if record.get("device_name"):
        return record["device_name"]
    kind = record.get("device_type")
    return f"{kind} (unnamed card)" if kind else None


def _workload(record: dict) -> str:
    """One line naming what a run did, so that different work never shares a cell: its
    workload identity (benchmark.workload.identity; rebuilt from the fields of a record older
    than it) and how it was measured."""
    data = record.get("dataset") or {}
    work = record.get("workload") or identity(
        None,
        record.get("mode"),
        (_number(record.get("image_min_size")), _number(record.get("image_max_size"))),
        data.get("name"),
        data.get("fingerprint"),
        record.get("weights_id") or record.get("weights"),
        bool(record.get("compile")),
        bool(record.get("channels_last")),
    )
    parts = [
        work["size"],
        work["data"],
        f"weights {work['weights']}",
        f"{_text(record.get('measured_iters'))} it + {_text(record.get('warmup_iters'))} warm-up",
        f"sync {_text(record.get('sync'))}",
    ]
    parts += [] if work["execution"] == "eager" else work["execution"].split(",")
    if "compile" in parts and record.get("compile_shapes"):  # how it compiled is other work
        buckets = record.get("shape_buckets")
        at = f" on {len(buckets)} shape buckets" if buckets else ""
        parts[parts.index("compile")] = f"compile {record['compile_shapes']}{at}"
    parts += [] if work["config"] == "-" else [f"config {work['config'][:8]}"]
    return ", ".join(parts)


def _number(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _precision_order(precisions: list[str]) -> list[str]:
    known = [p for p in PRECISIONS if p in precisions]
    return known + sorted(set(precisions) - set(known))


def _order(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Sort rows by keys, batch sizes as numbers and precisions in PRECISIONS order."""

    def sort_key(col: pd.Series) -> pd.Series:
        if col.name == "batch_per_card":
            return pd.to_numeric(col, errors="coerce")
        if col.name == "precision":
            return col.map(lambda p: f"{PRECISIONS.index(p) if p in PRECISIONS else 9}{p}")
        return col

    return table.sort_values(keys, key=sort_key, kind="stable")


def _ok(df: pd.DataFrame, mode: str) -> pd.DataFrame:
    return df[(df["status"] == "ok") & (df["mode"] == mode)]


# -- tables (numbers) ------------------------------------------------------------------------


def training_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Long form: one row per training cell with median img/s, speedup and efficiency."""
    ok = _ok(df, "train")
    if ok.empty:
        return pd.DataFrame()
    keys = [*ROW, "cards", "precision"]
    ok = ok.assign(**{c: pd.to_numeric(ok.get(c), errors="coerce") for c in OPTIONAL_NUMBERS})
    ok = ok.assign(peak_mem_kind=ok.get("peak_mem_kind"))
    cells = (
        ok.groupby(keys)
        .agg(
            throughput=("throughput_img_s", "median"),
            runs=("throughput_img_s", "count"),
            peak_mb=("peak_mem_mb", "median"),
            mem_kind=("peak_mem_kind", _kinds),
            gflops=("gflops_per_image", "median"),
            tflops=("achieved_tflops", "median"),
            utilisation=("flop_utilisation", "median"),
        )
        .reset_index()
    )
    one_card = cells[cells["cards"] == 1].set_index([*ROW, "precision"])["throughput"]
    fp32 = cells[cells["precision"] == "fp32"].set_index([*ROW, "cards"])["throughput"]
    cells = cells.join(one_card.rename("one_card"), on=[*ROW, "precision"])
    cells = cells.join(fp32.rename("fp32"), on=[*ROW, "cards"])
    cells["speedup"] = cells["throughput"] / cells["fp32"]
    cells["efficiency"] = cells["throughput"] / (cells["cards"] * cells["one_card"])
    return cells.drop(columns=["one_card", "fp32"])


def training_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows model x device x batch/card x cards; per precision: img/s, vs fp32, efficiency."""
    cells = training_cells(df)
    if cells.empty:
        return cells
    index = [*ROW, "cards"]
    wide = cells.pivot(index=index, columns="precision")
    table = pd.DataFrame(index=wide.index)
    precisions = _precision_order(list(cells["precision"].unique()))
    for p in precisions:
        table[f"{p} img/s"] = wide["throughput"][p].map(_rate)
        if p != "fp32" and "fp32" in precisions:
            table[f"{p} vs fp32"] = wide["speedup"][p].map(lambda v: _num(v, "{:.2f}x"))
        table[f"{p} eff"] = wide["efficiency"][p].map(lambda v: _num(v * 100, "{:.1f}%"))
        table[f"{p} TFLOP/s"] = [
            _tflops(t, u) for t, u in zip(wide["tflops"][p], wide["utilisation"][p], strict=True)
        ]
        table[f"{p} peak MB"] = [
            _memory(v, k, "{:.0f}")
            for v, k in zip(wide["peak_mb"][p], wide["mem_kind"][p], strict=True)
        ]
    # the count is the same at every precision: one column per row
    table["GFLOP/img"] = wide["gflops"].median(axis=1).map(lambda v: _num(v, "{:.3g}"))
    table["runs"] = wide["runs"].sum(axis=1).astype(int)
    return _order(table.reset_index(), index).rename(columns=LABELS)


def inference_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per inference cell: img/s and per-batch latency percentiles (medians)."""
    ok = _ok(df, "infer")
    if ok.empty:
        return pd.DataFrame()
    keys = ["model", "impl", "device_name", "workload", "cards", "precision", "batch_per_card"]
    metrics = {"throughput_img_s": "img/s", "gflops_per_image": "GFLOP/img"}
    metrics["achieved_tflops"] = "TFLOP/s"
    metrics.update({f"latency_ms.p{q}": f"latency p{q} ms" for q in (50, 90, 99)})
    metrics["peak_mem_mb"] = "peak MB"
    ok = ok.assign(**{c: pd.to_numeric(ok.get(c), errors="coerce") for c in OPTIONAL_NUMBERS})
    present = [m for m in metrics if m in ok]
    table = ok.groupby(keys)[[*present, "flop_utilisation"]].median()
    table["runs"] = ok.groupby(keys).size()
    table["mem_kind"] = (
        ok.assign(peak_mem_kind=ok.get("peak_mem_kind")).groupby(keys)["peak_mem_kind"].agg(_kinds)
    )
    table = _order(table.reset_index(), keys)
    table["peak_mem_mb"] = [
        _memory(v, k, "{:.1f}")
        for v, k in zip(table["peak_mem_mb"], table["mem_kind"], strict=True)
    ]
    table["achieved_tflops"] = [
        _tflops(t, u)
        for t, u in zip(table["achieved_tflops"], table["flop_utilisation"], strict=True)
    ]
    for m in present:
        if m == "throughput_img_s":
            table[m] = table[m].map(_rate)
        elif m not in ("achieved_tflops", "peak_mem_mb"):
            fmt = "{:.3g}" if m == "gflops_per_image" else "{:.1f}"
            table[m] = [_num(v, fmt) for v in table[m]]
    return table.drop(columns=["flop_utilisation", "mem_kind"]).rename(
        columns={**metrics, **LABELS}
    )


def accuracy_table(df: pd.DataFrame) -> pd.DataFrame:
    """COCO metrics by model, device and precision: the mean over a cell's records (its seeds,
    with `train --seeds N`), the sample standard deviation after a ±, and N."""
    cols = [f"accuracy.{m}" for m in ACCURACY if f"accuracy.{m}" in df]
    if not cols:
        return pd.DataFrame()
    ok = df[(df["status"] == "ok") & df[cols].notna().any(axis=1)]
    if ok.empty:
        return pd.DataFrame()
    keys = ["model", "impl", "device_name", "workload", "precision"]
    groups = ok.groupby(keys)[cols]
    table = groups.mean()
    spread = groups.std(ddof=1)
    table["runs"] = ok.groupby(keys).size()
    for c in cols:
        table[c] = [
            _num(m, "{:.4g}") + (f" ± {s:.2g}" if s == s and m == m else "")
            for m, s in zip(table[c], spread[c], strict=True)
        ]
    return _order(table.reset_index(), keys).rename(
        columns={c: c.split(".", 1)[1] for c in cols} | LABELS
    )


def loader_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per loader record: img/s at each worker count, per-image decode and transform
    medians, whether copies were pinned, and the cards of the given compute rate it feeds."""
    runs = _ok(df, "loader")
    if runs.empty or "loader.runs" not in runs:
        return pd.DataFrame()
    rows = []
    for _, r in runs.iterrows():
        decode, transform = r.get("loader.decode_ms") or {}, r.get("loader.transform_ms") or {}
        fed, compute = r.get("loader.cards_fed"), r.get("loader.compute_img_s")
        rows.append(
            {
                "model": r["model"],
                "device": r["device_name"],
                "workload": r["workload"],
                "batch/card": r["batch_per_card"],
                "img/s by workers": ", ".join(
                    f"{w['workers']}: {_rate(w['throughput_img_s'])}" for w in r["loader.runs"]
                ),
                "decode ms/img p50": _num(decode.get("p50"), "{:.1f}"),
                "transform ms/img p50": _num(transform.get("p50"), "{:.1f}"),
                "pinned": "on" if r.get("loader.pinned") else "off",
                "cards fed": "-"
                if fed is None or fed != fed
                else f"{fed:.2f} at {compute:g} img/s",
                "run": r["run_id"],
            }
        )
    return pd.DataFrame(rows)


VERIFY = ["box_match", "box_iou", "score_diff", "label_agreement", "mask_iou", "loss_diff"]


def verify_table(df: pd.DataFrame) -> pd.DataFrame:
    """Each verify run: how a device's detections and losses agreed with the CPU's in fp32."""
    runs = df[df["mode"] == "verify"]
    if runs.empty:
        return pd.DataFrame()
    cols = [f"agreement.{k}" for k in [*VERIFY, "loss_after_step_diff"]]
    table = runs[["model", "device_name", "precision", "status"]].copy()
    for col in cols:
        values = runs[col] if col in runs else pd.Series(float("nan"), index=runs.index)
        table[col.removeprefix("agreement.")] = [_num(v, "{:.4g}") for v in values]
    table["convs ran in"] = [_text(v) for v in runs.get("compute_dtype", [None] * len(runs))]
    return _order(table, ["model", "device_name", "precision"]).rename(columns=LABELS)


# one train or infer cell, as the conduct and throughput tables show it
RUN_CELL = ["mode", "model", "impl", "device_name", "workload", "cards", "precision"]
RUN_CELL.append("batch_per_card")
THROUGHPUTS = {
    "throughput_whole_img_s": "whole",
    "throughput_img_s": "train_only (window)",
    "throughput_compute_only_img_s": "compute_only",
    "data_bound_share": "data-bound share",
}


def _ok_with(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """The ok records that have `column` (older records may lack it)."""
    if column not in df:
        return df.iloc[0:0]
    return df[(df["status"] == "ok") & df[column].notna()]


def throughputs_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per train/infer cell, medians of the three throughputs side by side (FlagPerf's whole,
    train-only and compute-only) and the data-bound share 1 - train_only / compute_only."""
    runs = _ok_with(df, "throughput_compute_only_img_s")
    if runs.empty:
        return pd.DataFrame()
    keys = RUN_CELL
    cols = list(THROUGHPUTS)
    runs = runs.assign(**{c: pd.to_numeric(runs[c], errors="coerce") for c in cols})
    table = runs.groupby(keys)[cols].median()
    table["runs"] = runs.groupby(keys).size()
    for c in cols[:-1]:
        table[c] = table[c].map(_rate)
    table[cols[-1]] = table[cols[-1]].map(lambda v: _num(v, "{:.0%}"))
    return _order(table.reset_index(), keys).rename(columns=THROUGHPUTS | LABELS)


def conduct_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per train/infer cell: host reads and blocking ops per iteration (the model's among
    them; blocking ops are a lower bound off the strict device), pinned batch copies,
    recompilations in the window, the cards each rank touched, and every budget a run of the
    cell broke (benchmark.conduct)."""
    runs = _ok_with(df, "conduct.iterations")
    if runs.empty:
        return pd.DataFrame()
    keys = RUN_CELL
    iterations = runs["conduct.iterations"]
    missing = pd.Series(float("nan"), index=runs.index)  # records from before blocking ops
    runs = runs.assign(
        model_reads=runs["conduct.model_host_reads"] / iterations,
        blocking=runs.get("conduct.sync_ops", missing) / iterations,
        model_blocking=runs.get("conduct.model_sync_ops", missing) / iterations,
        cards_touched=[_text(c) for c in runs["conduct.cards_touched"]],
    )
    cells = runs.groupby(keys)
    table = cells.agg(
        reads=("conduct.host_reads_per_iter", "median"),
        model_reads=("model_reads", "median"),
        blocking=("blocking", "median"),
        model_blocking=("model_blocking", "median"),
        copies=("conduct.h2d_copies", "median"),
        pinned=("conduct.h2d_pinned", "median"),
        recompiles=("conduct.recompiles", "max"),
        cards_touched=("cards_touched", _kinds),
        runs=("run_id", "count"),
    )
    table["budget"] = cells["conduct.budget_broken"].agg(
        lambda lists: "; ".join(sorted({b for found in lists for b in found})) or "ok"
    )
    table["host reads/it (model's)"] = [
        f"{_num(r, '{:.3g}')} ({_num(m, '{:.3g}')})"
        for r, m in zip(table.pop("reads"), table.pop("model_reads"), strict=True)
    ]
    table["blocking ops/it (model's)"] = [
        f"{_num(b, '{:.3g}')} ({_num(m, '{:.3g}')})"
        for b, m in zip(table.pop("blocking"), table.pop("model_blocking"), strict=True)
    ]
    table["pinned/copies"] = [
        f"{_num(p, '{:.0f}')}/{_num(c, '{:.0f}')}"
        for p, c in zip(table.pop("pinned"), table.pop("copies"), strict=True)
    ]
    order = ["host reads/it (model's)", "blocking ops/it (model's)", "pinned/copies"]
    order += ["recompiles", "cards_touched", "budget"]
    return _order(table[[*order, "runs"]].reset_index(), keys).rename(columns=LABELS)


def data_bound_table(df: pd.DataFrame) -> pd.DataFrame:
    if "data_time_share" not in df:
        return pd.DataFrame()
    bound = df[(df["status"] == "ok") & (df["data_time_share"] > DATA_BOUND_SHARE)]
    cols = ["run_id", "mode", "model", "device_name", "cards", "precision", "batch_per_card"]
    cols.append("data_time_share")
    table = bound[cols].copy()
    table["data_time_share"] = table["data_time_share"].map(lambda v: f"{v * 100:.0f}%")
    return table.rename(columns={"data_time_share": "waiting for data", **LABELS})


def not_ok_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every skipped, failed, nan or oom record with its reason (and, for a multi-node run,
    what its other nodes' own records said)."""
    bad = df[df["status"] != "ok"]
    cols = ["run_id", "status", "mode", "model", "device_name", "cards", "precision"]
    cols.append("batch_per_card")
    table = bad[cols].copy()
    table["reason"] = [_first_line(e) for e in bad["error"]]
    if "node_errors" in bad:
        table["other nodes"] = [
            "; ".join(_first_line(e) for e in v) if isinstance(v, list) else "-"
            for v in bad["node_errors"]
        ]
    return table.rename(columns=LABELS)


def join_runs(records: list[dict]) -> list[dict]:
    """One record per run id: the run's own (node 0's), with `node_errors` holding what the
    other nodes' own failed records said ('node N: error'); a run whose node 0 left nothing
    is shown by the first other node's record."""
    runs: dict[str, list[dict]] = {}
    for record in records:
        runs.setdefault(record["run_id"], []).append(record)
    joined = []
    for parts in runs.values():
        parts = sorted(parts, key=lambda r: r.get("node_rank") or 0)
        head, others = parts[0], parts[1:]
        if others:
            errors = [f"node {r.get('node_rank')}: {r.get('error')}" for r in others]
            head = {**head, "node_errors": errors}
        joined.append(head)
    return joined


EFFICIENCY_FLAG = 0.70  # a scaling efficiency below this is flagged with its interconnect


def scaling_table(df: pd.DataFrame) -> pd.DataFrame:
    """Weak scaling (same batch per card) over cards and nodes: img/s, efficiency against one
    card, and the interconnect each count depended on (backend, all-reduce busbw at DDP's
    bucket size); an efficiency below 70% is flagged with its busbw."""
    ok = _ok(df, "train")
    if ok.empty or not (pd.to_numeric(ok["cards"], errors="coerce") > 1).any():
        return pd.DataFrame()
    ok = ok.assign(
        nodes=pd.to_numeric(ok.get("nodes"), errors="coerce").fillna(1).astype(int),
        busbw=pd.to_numeric(ok.get("interconnect.busbw_gb_s"), errors="coerce"),
        backend=[_text(v) for v in ok.get("interconnect.backend", [None] * len(ok))],
    )
    keys = [*ROW, "precision", "cards", "nodes"]
    cells = (
        ok.groupby(keys)
        .agg(
            throughput=("throughput_img_s", "median"),
            busbw=("busbw", "median"),
            backend=("backend", _kinds),
            runs=("throughput_img_s", "count"),
        )
        .reset_index()
    )
    one = cells[(cells["cards"] == 1) & (cells["nodes"] == 1)]
    one = one.set_index([*ROW, "precision"])["throughput"].rename("one_card")
    cells = cells.join(one, on=[*ROW, "precision"])
    cells = cells[cells["cards"] > 1]
    if cells.empty:
        return pd.DataFrame()
    efficiency = cells["throughput"] / (cells["cards"] * cells["one_card"])
    table = cells[[*keys]].copy()
    table["img/s"] = cells["throughput"].map(_rate)
    table["efficiency"] = efficiency.map(lambda v: _num(v * 100, "{:.1f}%"))
    table["backend"] = cells["backend"]
    table["busbw GB/s"] = cells["busbw"].map(lambda v: _num(v, "{:.3g}"))
    table["flag"] = [
        f"below {EFFICIENCY_FLAG:.0%} at busbw {_num(b, '{:.3g}')} GB/s"
        if e < EFFICIENCY_FLAG
        else ""
        for e, b in zip(efficiency, cells["busbw"], strict=True)
    ]
    table["runs"] = cells["runs"]
    return _order(table, keys).rename(columns=LABELS)


def comm_table(df: pd.DataFrame) -> pd.DataFrame:
    """The comm verb's records: one row per device, cards, nodes, backend, op and size, the
    median over records; busbw as nccl-tests computes it."""
    if "collectives" not in df:
        return pd.DataFrame()
    runs = df[(df["status"] == "ok") & (df["mode"] == "comm")]
    rows = [
        {
            "device_type": r.device_type,
            "device_name": r.device_name,
            "cards": r.cards,
            "nodes": _text(getattr(r, "nodes", None)),
            "backend": _text(getattr(r, "collective_backend", None)),
            **c,
        }
        for r in runs.itertuples()
        if isinstance(r.collectives, list)
        for c in r.collectives
    ]
    if not rows:
        return pd.DataFrame()
    keys = ["device_type", "device_name", "cards", "nodes", "backend", "op", "bytes"]
    cells = (
        pd.DataFrame(rows)
        .groupby(keys, sort=False)
        .agg(
            time_us=("time_us", "median"),
            busbw=("busbw_gb_s", "median"),
            runs=("busbw_gb_s", "count"),
        )
        .reset_index()
    )
    table = cells[keys].copy()
    table["bytes"] = cells["bytes"].map(_bytes)
    table["time us"] = cells["time_us"].map(lambda v: _num(v, "{:.1f}"))
    table["busbw GB/s"] = cells["busbw"].map(lambda v: _num(v, "{:.3g}"))
    table["runs"] = cells["runs"]
    return table.rename(columns=LABELS)


def _bytes(n: int) -> str:
    for unit, size in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def notes_table(df: pd.DataFrame) -> pd.DataFrame:
    """Each note the ok records carry (a capability the device lacks, a slow path the numbers
    measure), once per device, with the precisions and modes of the runs that carry it."""
    if "notes" not in df:
        return pd.DataFrame()
    rows = [
        (r.device_name, note, r.precision, r.mode)
        for r in df[df["status"] == "ok"].itertuples()
        if isinstance(r.notes, list)
        for note in r.notes
    ]
    if not rows:
        return pd.DataFrame()
    notes = pd.DataFrame(rows, columns=["device", "note", "precision", "mode"])
    table = notes.groupby(["device", "note"], sort=False).agg(
        precisions=("precision", lambda s: ", ".join(_precision_order(sorted(set(s))))),
        modes=("mode", lambda s: ", ".join(sorted(set(s)))),
        runs=("note", "size"),
    )
    return table.reset_index()


def _first_line(text: object, limit: int = 160) -> str:
    line = str(text or "-").strip().splitlines()[0] if str(text or "").strip() else "-"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def ops_table(df: pd.DataFrame) -> pd.DataFrame:
    """The kernel every op used on each device; several values mean records disagree."""
    cols = sorted(c for c in df if c.startswith("ops."))
    if not cols:
        return pd.DataFrame()
    rows = df[df[cols].notna().any(axis=1)]
    table = rows.groupby(["device_type", "device_name"])[cols].agg(
        lambda s: " / ".join(sorted(set(s.dropna()))) or "-"
    )
    return table.reset_index().rename(columns={c: c[4:] for c in cols} | LABELS)


def env_table(df: pd.DataFrame) -> pd.DataFrame:
    """The software of each machine that produced records."""
    wanted = ["env.torch", "env.torchvision", "env.plugin", "env.driver", "env.python"]
    cols = [c for c in wanted if c in df]
    host = df["env.hostname"] if "env.hostname" in df else pd.Series("-", index=df.index)
    data = df[["device_type", "device_name", *cols]].assign(hostname=host.map(_text))
    data["git_commit"] = df.get("git_commit")
    keys = ["hostname", "device_type", "device_name"]
    table = data.groupby(keys)[[*cols, "git_commit"]].agg(
        lambda s: " / ".join(sorted({_text(v) for v in s}))
    )
    table["runs"] = data.groupby(keys).size()
    return table.reset_index().rename(columns={c: c[4:] for c in cols} | LABELS)


def _num(value: float, fmt: str) -> str:
    return "-" if pd.isna(value) else fmt.format(value)


def _rate(value: float) -> str:
    """img/s with one decimal, or two significant digits below 1 (0.086, not 0.1)."""
    return _num(value, "{:.2g}" if abs(value) < 1 else "{:.1f}")


def _kinds(values: pd.Series) -> str:
    """The kinds of memory a cell's records measured (one, unless records disagree)."""
    return "/".join(sorted({v for v in values if isinstance(v, str)}))


def _memory(mb: float, kind: object, fmt: str) -> str:
    """Peak MB with the kind of memory measured (process_rss, allocated_tensors, ...)."""
    text = _num(mb, fmt)
    return f"{text} ({kind})" if text != "-" and isinstance(kind, str) and kind else text


def _tflops(achieved: float, utilisation: float) -> str:
    """Achieved TFLOP/s, with the share of the cards' peak when the peak was known."""
    text = _num(achieved, "{:.3g}")
    return text if pd.isna(utilisation) else f"{text} ({utilisation * 100:.2g}% of peak)"


# -- rendering -------------------------------------------------------------------------------


def markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table; '|' inside cells is escaped."""
    if table.empty:
        return ""
    cells = [[_text(v).replace("|", "\\|") for v in row] for row in table.itertuples(index=False)]
    header = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _slug(*parts: object) -> str:
    text = "_".join(_text(p) for p in parts)
    short = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80]
    return f"{short}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"


def plot_scaling(df: pd.DataFrame, plots_dir: Path) -> list[Path]:
    """Throughput vs cards, one line per precision, one figure per model/device/batch."""
    cells = training_cells(df)
    if cells.empty:
        return []
    paths = []
    for key, group in cells.groupby(ROW):
        fig = Figure(figsize=(6, 4), layout="constrained")
        ax = fig.subplots()
        for p in _precision_order(list(group["precision"].unique())):
            line = group[group["precision"] == p].sort_values("cards")
            ax.plot(line["cards"], line["throughput"], marker="o", label=p)
        ax.set(xlabel="cards", ylabel="images / s", xticks=sorted(group["cards"].unique()))
        ax.set_title(f"{key[0]} ({key[1]}) on {key[2]}, batch/card {key[3]}", fontsize=9)
        ax.legend(title="precision")
        ax.grid(alpha=0.3)
        path = plots_dir / f"throughput_vs_cards_{_slug(*key)}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths


def plot_latency(df: pd.DataFrame, plots_dir: Path) -> list[Path]:
    """Per-batch latency p50/p90/p99 bars by batch size and precision, per model/device."""
    ok = _ok(df, "infer")
    cols = [f"latency_ms.p{q}" for q in (50, 90, 99)]
    if ok.empty or not set(cols) <= set(ok):
        return []
    paths = []
    for key, group in ok.dropna(subset=cols).groupby(["model", "impl", "device_name", "cards"]):
        cells = group.groupby(["batch_per_card", "precision"])[cols].median().reset_index()
        cells = _order(cells, ["batch_per_card", "precision"])
        labels = [f"b{b} {p}" for b, p in cells[["batch_per_card", "precision"]].to_numpy()]
        fig = Figure(figsize=(max(4, 1.2 * len(cells) + 2), 4), layout="constrained")
        ax = fig.subplots()
        width = 0.27
        for i, col in enumerate(cols):
            xs = [x + (i - 1) * width for x in range(len(cells))]
            ax.bar(xs, cells[col], width=width, label=col.split(".")[1])
        ax.set_xticks(range(len(cells)), labels)
        ax.set(ylabel="latency per batch (ms)")
        ax.set_title(f"{key[0]} ({key[1]}) on {key[2]} x{key[3]}", fontsize=9)
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
        path = plots_dir / f"latency_{_slug(*key)}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths


@dataclass
class Report:
    text: str  # the whole REPORT.md
    summary: str  # the main tables, for the terminal
    plots: list[Path] = field(default_factory=list)


def _section(title: str, table: pd.DataFrame, empty: str, note: str = "") -> str:
    body = markdown(table) if not table.empty else empty
    return f"## {title}\n\n" + (f"{note}\n\n" if note else "") + body + "\n"


def build_report(
    records: list[dict], out_dir: str | Path, sources: list[str], refused: list[str] = ()
) -> Report:
    """Write out_dir/REPORT.md and out_dir/plots/*.png from the records; return what was made."""
    out = Path(out_dir)
    plots_dir = out / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    for old in plots_dir.glob("*.png"):  # a rebuild must not leave plots of vanished cells
        if old.name.startswith(PLOT_PREFIXES):
            old.unlink()
    records = join_runs(records)  # a multi-node run's records, one per node, are one run
    df = frame(records)
    scaling, latency = plot_scaling(df, plots_dir), plot_latency(df, plots_dir)
    ok = int((df["status"] == "ok").sum())
    main = [
        _section(
            "Training throughput (images/s, all cards)",
            training_table(df),
            "No ok training records.",
            "Median over records of a cell. `vs fp32` = img/s / fp32 img/s on the same row; "
            "`eff` = img/s on N cards / (N x img/s on 1 card), same batch per card.",
        ),
        _section(
            "Scaling (weak: same batch per card) and the interconnect",
            scaling_table(df),
            "No multi-card training records.",
            "`efficiency` = img/s on N cards / (N x img/s on 1 card of 1 node); `busbw` = the "
            "all-reduce probe each run made before its window at DDP's bucket size "
            "(algbw x 2(n-1)/n, as nccl-tests). On one CPU host this exercises the path, not "
            "the hardware.",
        ),
        _section(
            "Collectives (`python -m benchmark comm`)",
            comm_table(df),
            "No comm records.",
            "busbw = algbw x 2(n-1)/n (all-reduce) or x (n-1)/n (all-gather), as nccl-tests.",
        ),
        _section(
            "Inference throughput and latency (per batch)",
            inference_table(df),
            "No ok inference records.",
        ),
        _section(
            "Accuracy (COCO)",
            accuracy_table(df),
            "No evaluated records.",
            "Mean over a cell's runs (its seeds: `train --seeds N`), ± their sample standard "
            "deviation, and N (runs).",
        ),
        _section(
            "Data loader (loader)",
            loader_table(df),
            "No loader records.",
            "The training loader alone (`python -m benchmark loader`): img/s at each worker "
            "count (pinned copies to the card included), one image's decode and transform on one "
            "thread; `cards fed` = best img/s / one card's compute-only img/s.",
        ),
        _section(
            "Whole, train-only and compute-only throughput (images/s)",
            throughputs_table(df),
            "No record has the three throughputs.",
            "`whole`: the run as a user runs it (warm-up, data, steps, evaluation); "
            "`train_only`: the measured window; `compute_only`: the same step on batches already "
            "on the card, no data I/O; data-bound share = 1 - train_only / compute_only.",
        ),
        _section(
            "Conduct (inside the measured window)",
            conduct_table(df),
            "No record counts conduct.",
            "What a real card punishes: host reads per iteration (the model's own in brackets; "
            "budget: one per training step, none between log periods with sync window, one per "
            "inference batch), batch copies pinned, recompilations, cards each rank touched. "
            "`budget` names every budget a run of the cell broke.",
        ),
        _section(
            "Notes on the ok runs",
            notes_table(df),
            "None.",
            "What the records' `notes` say about how their numbers were measured.",
        ),
        _section(
            "Device vs CPU (verify)",
            verify_table(df),
            "No verify records.",
            "The same weights and images on the device and on the CPU in fp32: detections "
            "matched by IoU >= 0.5 (`box_match` = matched / most detections), mean IoU, largest "
            "score difference, label and mask agreement; relative loss difference of a training "
            "step and after it. A record holds its bounds (`agreement_limits`); a miss fails it.",
        ),
    ]
    rest = [
        _section(
            "Data-bound runs",
            data_bound_table(df),
            "None.",
            f"Runs that waited for data more than {DATA_BOUND_SHARE:.0%} of their measured time; "
            "their throughput measures the input pipeline.",
        ),
        _section("Skipped and failed runs", not_ok_table(df), "None."),
        _section(
            "Op kernels",
            ops_table(df),
            "No record says which kernels ran.",
            "`native` is the pure-torch fallback; any other value is a vendor kernel.",
        ),
        _section("Environments", env_table(df), "No records."),
    ]
    if refused:
        rest.append("## Refused record lines\n\n" + "\n".join(f"- `{p}`" for p in refused) + "\n")
    figures = [f"![{p.stem}](plots/{p.name})" for p in [*scaling, *latency]]
    header = (
        "# rcnn-bench report\n\n"
        f"Rebuilt by `python -m benchmark report` from {len(records)} records ({ok} ok, "
        f"{len(records) - ok} not ok) in: {', '.join(f'`{s}`' for s in sources)}.\n"
    )
    plots_md = "## Plots\n\n" + ("\n\n".join(figures) if figures else "None.") + "\n"
    text = "\n".join([header, *main, plots_md, *rest])
    atomic_write_text(out / "REPORT.md", text)
    return Report(text=text, summary="\n".join(main), plots=[*scaling, *latency])


README_BEGIN = "<!-- benchmark report --readme: begin -->"
README_END = "<!-- benchmark report --readme: end -->"


def splice_into_readme(path: str | Path, summary: str, sources: list[str]) -> None:
    """Replace the block between README_BEGIN and README_END in `path` with the report's main
    tables (their headings one level down), so the README shows a report, never hand copies."""
    readme = Path(path)
    text = readme.read_text(encoding="utf-8")
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{readme}: no '{README_BEGIN}' ... '{README_END}' block to replace")
    tables = re.sub(r"^## ", "#### ", summary, flags=re.MULTILINE)
    block = (
        f"{README_BEGIN}\n"
        f"<!-- made by `python -m benchmark report --results {' '.join(sources)} --readme "
        f"{readme.name}`; edit the records, not this block -->\n\n{tables.strip()}\n\n"
    )
    atomic_write_text(readme, text[:begin] + block + text[end:])
