"""REPORT.md and plots rebuilt from records of two result folders.

The records are test fixtures: synthetic values written as JSON here, never measurements.
"""

import argparse
import json
import statistics

import pytest

from benchmark.commands import report as report_cmd
from benchmark.errors import UsageError
from benchmark.record import RECORDS_FILE, new_record, write_run
from benchmark.report import (
    README_BEGIN,
    README_END,
    conduct_table,
    frame,
    inference_table,
    throughputs_table,
    training_table,
)

A100 = "NVIDIA A100-SXM4-80GB"
MODEL = "e2e_mask_rcnn_R_50_FPN_1x"
PNG = b"\x89PNG\r\n\x1a\n"


def rec(host, **fields):
    base = dict(
        mode="train",
        model=MODEL,
        impl="rcnn",
        device_type="cuda",
        device_name=A100,
        cards=1,
        precision="fp32",
        batch_per_card=2,
        throughput_img_s=1.0,
        git_commit="abc123",
        env={"hostname": host, "torch": "2.14.1", "plugin": None, "driver": "570.86"},
        data_time_share=0.05,
    )
    return new_record(**{**base, **fields})


# (cards, precision, img/s) per folder; one cell spans both folders
TRAIN_A = [
    (1, "fp32", 20.0),
    (1, "fp32", 22.0),
    (2, "fp32", 40.0),
    (1, "fp16", 36.0),
    (2, "fp16", 68.0),
    (4, "fp16", 130.0),
]
TRAIN_B = [(4, "fp32", 78.0), (4, "fp32", 80.0), (4, "fp32", 82.0), (4, "fp16", 134.0)]


def latency(p50, p90, p99):
    return {"mean": p50 * 1.05, "p50": p50, "p90": p90, "p99": p99}


@pytest.fixture
def folders(tmp_path):
    a, b = tmp_path / "machine_a", tmp_path / "machine_b"
    for c, p, t in TRAIN_A:
        write_run(a, rec("gpu-a", cards=c, precision=p, throughput_img_s=t, global_batch=2 * c))
    for c, p, t in TRAIN_B:
        write_run(b, rec("gpu-b", cards=c, precision=p, throughput_img_s=t))
    for batch, p, thr, lat in [
        (1, "fp32", 14.0, (70.0, 75.0, 90.0)),
        (8, "fp32", 40.0, (200.0, 210.0, 260.0)),
        (16, "fp32", 42.0, (380.0, 400.0, 450.0)),
        (1, "fp16", 25.0, (40.0, 44.0, 51.0)),
    ]:
        write_run(
            a,
            rec(
                "gpu-a",
                mode="infer",
                batch_per_card=batch,
                precision=p,
                throughput_img_s=thr,
                latency_ms=latency(*lat),
                accuracy={"bbox_ap": 0.378, "bbox_ap50": 0.592, "segm_ap": 0.343},
                ops={"nms": "cuda", "roi_align": "native"},
            ),
        )
    write_run(
        a,
        rec(
            "gpu-a",
            status="skipped",
            precision="bf16",
            throughput_img_s=None,
            error="precision 'bf16' needs --allow-emulated on this card",
        ),
    )
    write_run(
        b,
        rec(
            "gpu-b",
            status="oom",
            cards=1,
            batch_per_card=16,
            throughput_img_s=None,
            error="OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        ),
    )
    write_run(
        b,
        rec(
            "gpu-b",
            cards=1,
            precision="tf32",
            batch_per_card=4,
            throughput_img_s=9.0,
            data_time_share=0.35,
            data_bound=True,
        ),
    )
    with open(b / RECORDS_FILE, "a") as f:
        f.write('{"schema_version": 1, "run_id": "torn\n')
    return a, b


def run_report(results, out, capsys, extra=()):
    parser = argparse.ArgumentParser()
    report_cmd.add_parser(parser.add_subparsers())
    argv = ["report", *[x for r in results for x in ("--results", str(r))], "--out", str(out)]
    argv += list(extra)
    args = parser.parse_args(argv)
    code = args.func(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def row(text, *start):
    """The markdown table row that begins with the given cells."""
    prefix = "| " + " | ".join(start) + " |"
    hits = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(hits) == 1, (prefix, hits)
    return [c.strip() for c in hits[0].strip("|").split("|")]


def header(text, first):
    line = next(x for x in text.splitlines() if x.startswith(f"| {first} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_report_merges_folders_with_speedup_and_efficiency(folders, tmp_path, capsys):
    code, out, err = run_report(folders, tmp_path / "out", capsys)
    assert code == 0
    text = (tmp_path / "out" / "REPORT.md").read_text()

    thr = {}
    for c, p, t in TRAIN_A + TRAIN_B:
        thr.setdefault((c, p), []).append(t)
    med = {k: statistics.median(v) for k, v in thr.items()}
    w = frame([rec("any")])["workload"][0]  # these records name no size, data or iterations
    cols = header(text, "model")
    assert cols == [
        "model",
        "impl",
        "device",
        "batch/card",
        "workload",
        "cards",
        "fp32 img/s",
        "fp32 eff",
        "fp32 TFLOP/s",
        "fp32 peak MB",
        "tf32 img/s",
        "tf32 vs fp32",
        "tf32 eff",
        "tf32 TFLOP/s",
        "tf32 peak MB",
        "fp16 img/s",
        "fp16 vs fp32",
        "fp16 eff",
        "fp16 TFLOP/s",
        "fp16 peak MB",
        "GFLOP/img",
        "runs",
    ]
    for cards in (1, 2, 4):
        cells = dict(zip(cols, row(text, MODEL, "rcnn", A100, "2", w, str(cards)), strict=True))
        fp32, fp16 = med[(cards, "fp32")], med[(cards, "fp16")]
        assert cells["fp32 img/s"] == f"{fp32:.1f}"
        assert cells["fp16 img/s"] == f"{fp16:.1f}"
        assert cells["fp16 vs fp32"] == f"{fp16 / fp32:.2f}x"
        assert cells["fp32 eff"] == f"{100 * fp32 / (cards * med[(1, 'fp32')]):.1f}%"
        assert cells["fp16 eff"] == f"{100 * fp16 / (cards * med[(1, 'fp16')]):.1f}%"
        assert cells["runs"] == str(len(thr[(cards, "fp32")]) + len(thr[(cards, "fp16")]))
    # spot-check the arithmetic by hand: 4 cards fp32 median 80 over 4 x 21
    assert row(text, MODEL, "rcnn", A100, "2", w, "4")[6:8] == ["80.0", "95.2%"]
    # the tf32 run at another batch size is its own row, not mixed into batch 2
    tf32 = row(text, MODEL, "rcnn", A100, "4", w, "1")[6:12]
    assert tf32 == ["-", "-", "-", "-", "9.0", "-"]

    # inference: batch sizes in numeric order, latency percentiles from the records
    assert row(text, MODEL, "rcnn", A100, w, "1", "fp32", "1")[7:] == [
        "14.0",
        "-",  # GFLOP/img and TFLOP/s: these records counted none
        "-",
        "70.0",
        "75.0",
        "90.0",
        "-",  # peak MB: these records measured none
        "1",
    ]
    fp16 = row(text, MODEL, "rcnn", A100, w, "1", "fp16", "1")
    assert fp16[7:8] + fp16[10:12] == ["25.0", "40.0", "44.0"]
    assert text.index(f"| {MODEL} | rcnn | {A100} | {w} | 1 | fp32 | 8 |") < text.index(
        f"| {MODEL} | rcnn | {A100} | {w} | 1 | fp32 | 16 |"
    )

    # accuracy, not-ok cells with reasons, data-bound runs, kernels, environments
    assert row(text, MODEL, "rcnn", A100, w, "fp16")[5:] == ["0.378", "0.592", "0.343", "1"]
    assert "| skipped | train |" in text and "needs --allow-emulated on this card" in text
    assert "| oom | train |" in text and "CUDA out of memory" in text
    assert "## Data-bound runs" in text and "| 35% |" in text
    assert row(text, "cuda", A100) == ["cuda", A100, "cuda", "native"]
    assert row(text, "gpu-a", "cuda", A100)[3:5] == ["2.14.1", "-"]
    assert row(text, "gpu-b", "cuda", A100)[-1] == "6"

    # the malformed line is refused by file and line, and everything else rendered
    bad = f"{folders[1] / RECORDS_FILE}:7"
    assert f"refused: {bad}: not a JSON line" in err
    assert bad in text
    assert "## Training throughput" in out and "| 4 | 80.0 | 95.2% |" in out


def test_plots_are_pngs_and_rebuilt(folders, tmp_path, capsys):
    plots = tmp_path / "out" / "plots"
    plots.mkdir(parents=True)
    (plots / "latency_stale-cell-000000.png").write_bytes(PNG)
    (plots / "mine.png").write_bytes(b"kept")
    code, _, _ = run_report(folders, tmp_path / "out", capsys)
    assert code == 0
    names = sorted(p.name for p in plots.iterdir())
    assert "latency_stale-cell-000000.png" not in names and "mine.png" in names
    scaling = [n for n in names if n.startswith("throughput_vs_cards_")]
    lat = [n for n in names if n.startswith("latency_")]
    assert len(scaling) == 2 and len(lat) == 1  # batch 2 and batch 4 rows; one infer device
    for name in scaling + lat:
        assert (plots / name).read_bytes()[:8] == PNG
        assert f"](plots/{name})" in (tmp_path / "out" / "REPORT.md").read_text()


def test_no_valid_records_exits_1(tmp_path, capsys):
    (tmp_path / RECORDS_FILE).write_text("garbage\n")
    code, _, err = run_report([tmp_path], tmp_path / "out", capsys)
    assert code == 1
    assert f"{tmp_path / RECORDS_FILE}:1: not a JSON line" in err
    assert "no valid records" in err
    assert not (tmp_path / "out" / "REPORT.md").exists()


def test_only_failed_records_still_render(tmp_path, capsys):
    write_run(tmp_path, rec("h", status="failed", throughput_img_s=None, error="boom\ntrace"))
    code, out, _ = run_report([tmp_path], tmp_path, capsys)
    assert code == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "No ok training records." in out and "| failed | train |" in text
    assert "| boom |" in text
    assert json.loads((tmp_path / RECORDS_FILE).read_text())["status"] == "failed"


def test_training_table_without_fp32_has_no_speedup_column():
    records = [rec("h", precision="bf16", cards=c, throughput_img_s=t) for c, t in [(1, 5), (2, 8)]]
    table = training_table(frame(records))
    assert list(table.columns) == [
        "model",
        "impl",
        "device",
        "batch/card",
        "workload",
        "cards",
        "bf16 img/s",
        "bf16 eff",
        "bf16 TFLOP/s",
        "bf16 peak MB",
        "GFLOP/img",
        "runs",
    ]
    assert table["bf16 eff"].tolist() == ["100.0%", "80.0%"]


def test_records_differing_only_in_image_size_are_two_cells():
    small = [
        rec("h", image_min_size=320, image_max_size=320, throughput_img_s=t, peak_mem_mb=m)
        for t, m in ((4, 100.0), (6, 140.0))
    ]
    large = rec("h", image_min_size=800, image_max_size=1333, throughput_img_s=1.0)
    table = training_table(frame([*small, large]))
    assert len(table) == 2
    sizes = [w.split(",")[0] for w in table["workload"]]
    by_size = dict(zip(sizes, table["fp32 img/s"], strict=True))
    assert by_size == {"320x320": "5.0", "800x1333": "1.0"}
    assert table["runs"].tolist() == [2, 1]
    assert table["fp32 peak MB"].tolist() == ["120", "-"]


def test_one_checkpoint_path_with_other_weights_is_another_cell(tmp_path):
    """The quickstart writes its checkpoint to one path on every run: the path is not the key."""
    from benchmark.workload.lookup import weights_id

    ckpt = tmp_path / "quick_400it.pth"
    ids = []
    for content in (b"first run's weights", b"second run's weights"):
        ckpt.write_bytes(content)
        ids.append(weights_id(str(ckpt)))
    assert ids[0] != ids[1] and ids[0].startswith("quick_400it.pth sha1:")
    assert weights_id(None) == weights_id("random") == "random"
    runs = [rec("h", mode="infer", weights=str(ckpt), weights_id=i) for i in ids]
    table = inference_table(frame(runs))
    assert sorted(w.split(", ")[2] for w in table["workload"]) == sorted(
        f"weights {i}" for i in ids
    )


def test_rates_below_one_image_per_second_keep_two_digits():
    """bf16 on a CPU's reference path ran at 0.086 img/s: one decimal showed 0.1."""
    train = training_table(frame([rec("h", throughput_img_s=0.0864)]))
    infer = inference_table(frame([rec("h", mode="infer", throughput_img_s=0.0714)]))
    assert (train["fp32 img/s"][0], infer["img/s"][0]) == ("0.086", "0.071")


def test_notes_of_ok_runs_are_listed_once_per_device():
    from benchmark.report import notes_table

    slow = "cpu: bf16 convolutions run on torch's reference path"
    runs = [
        rec("h", precision="bf16", notes=[slow]),
        rec("h", mode="infer", precision="bf16", notes=[slow, "peak unknown"]),
        rec("h", notes=["peak unknown"]),
        rec("h", status="failed", error="boom", notes=["a failed run's note is not listed"]),
    ]
    table = notes_table(frame(runs))
    assert table.values.tolist() == [
        [A100, slow, "bf16", "infer, train", 2],
        [A100, "peak unknown", "fp32, bf16", "infer, train", 2],
    ]


def test_peak_memory_cells_say_what_kind_of_memory_they_measured():
    train = [
        rec("h", image_min_size=s, peak_mem_mb=m, peak_mem_kind=k)
        for s, m, k in ((320, 90.0, "process_rss"), (800, 2048.0, "allocated_tensors"))
    ]
    table = training_table(frame(train))
    assert table["fp32 peak MB"].tolist() == ["90 (process_rss)", "2048 (allocated_tensors)"]
    infer = rec("h", mode="infer", peak_mem_mb=512.25, peak_mem_kind="driver_allocated_now")
    assert inference_table(frame([infer]))["peak MB"].tolist() == ["512.2 (driver_allocated_now)"]


def test_real_cpu_loop_measured_recorded_and_reported(tmp_path, capsys):
    import torch

    from benchmark.measure import IterationTimer, summarize
    from rcnn.device import resolve

    adapter, index = resolve("cpu")
    timer = IterationTimer(lambda: adapter.synchronize(index), warmup=1)
    batches = [torch.randn(2, 32, 32) for _ in range(4)]
    for batch in timer.iterate(batches):
        (batch @ batch).sum().item()
        timer.step_end(images=batch.shape[0])
    fields = summarize(timer.window(), latency=True)
    record = new_record(
        adapter, mode="infer", model="tiny", precision="fp32", batch_per_card=2, **fields
    )
    write_run(tmp_path, record)
    code, out, _ = run_report([tmp_path], tmp_path, capsys)
    assert code == 0
    w = frame([record])["workload"][0]
    assert w == "-x-, -, weights -, 3 it + 1 warm-up, sync iteration"
    cells = row(out, "tiny", "rcnn", record["device_name"], w, "1", "fp32", "2")
    assert cells[7] == f"{fields['throughput_img_s']:.1f}"
    assert cells[8:10] == ["-", "-"]  # no FLOP count in this record: GFLOP/img, TFLOP/s
    assert cells[10] == f"{fields['latency_ms']['p50']:.1f}"


def test_verify_records_have_their_own_section(tmp_path, capsys):
    numbers = dict(box_match=0.98, box_iou=0.991, score_diff=0.004, label_agreement=1.0)
    numbers.update(mask_iou=None, loss_diff=2e-4, loss_after_step_diff=8e-4)
    limits = dict(box_match=0.95, box_iou=0.98, score_diff=0.02, loss_diff=1e-3)
    verify = dict(mode="verify", throughput_img_s=None, agreement_limits=limits)
    write_run(tmp_path, rec("h", **verify, agreement=numbers, compute_dtype="float32"))
    worse = {**numbers, "box_match": 0.61}
    failed = dict(status="failed", error="cuda disagrees with the CPU: box_match 0.61 < 0.7")
    write_run(tmp_path, rec("h", **verify, precision="bf16", agreement=worse, **failed))
    code, _, _ = run_report([tmp_path], tmp_path, capsys)
    assert code == 0
    text = (tmp_path / "REPORT.md").read_text()
    section = text.split("## Device vs CPU (verify)")[1].split("## ")[0]
    assert f"| {MODEL} | {A100} | fp32 | ok | 0.98 | 0.991 | 0.004 | 1 | - | 0.0002 |" in section
    assert f"| {MODEL} | {A100} | bf16 | failed | 0.61 |" in section
    assert "| box_match 0.61 < 0.7 |" not in section  # the reason is in the failed-runs table
    assert "disagrees with the CPU: box_match 0.61 < 0.7" in text
    assert "No ok training records." in text  # a verify record is not a training cell


def test_readme_block_is_replaced_by_the_reports_tables(folders, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# top\n\nprose\n\n{README_BEGIN}\nold table\n{README_END}\n\ntail\n")
    argv = ["--readme", str(readme)]
    code, out, err = run_report(folders, tmp_path / "out", capsys, extra=argv)
    assert code == 0, err
    text = readme.read_text()
    assert text.startswith("# top\n\nprose\n\n" + README_BEGIN) and text.endswith(
        README_END + "\n\ntail\n"
    )
    assert "old table" not in text and "#### Training throughput" in text
    report = (tmp_path / "out" / "REPORT.md").read_text()
    w = frame([rec("any")])["workload"][0]
    assert row(text, MODEL, "rcnn", A100, "2", w, "4") == row(
        report, MODEL, "rcnn", A100, "2", w, "4"
    )
    # run again: the block is replaced, not appended
    assert run_report(folders, tmp_path / "out", capsys, extra=argv)[0] == 0
    assert readme.read_text() == text
    # a README without the block is a one-line usage error, untouched
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no block\n")
    with pytest.raises(UsageError, match="no '<!-- benchmark report --readme: begin -->'"):
        run_report(folders, tmp_path / "out", capsys, extra=["--readme", str(plain)])
    assert plain.read_text() == "no block\n"


def test_the_projects_readme_has_the_block_report_fills():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert text.count(README_BEGIN) == 1 and text.index(README_BEGIN) < text.index(README_END)


def test_a_card_without_a_name_is_shown_by_its_device_type():
    """A plug-in without get_device_name leaves device_name null: its rows still say which
    device ran them, and do not share a cell with another unnamed device's."""
    runs = [
        rec("h", device_type="strict", device_name=None, cards=1),
        rec("h", device_type="strict", device_name=None, cards=2, throughput_img_s=1.8),
        rec("h", device_type="other", device_name=None),
    ]
    table = training_table(frame(runs))
    assert sorted(set(table["device"])) == ["other (unnamed card)", "strict (unnamed card)"]


def conduct(reads: int, model_reads: int, pinned: int, broken: list[str]) -> dict:
    return {
        "iterations": 4,
        "host_reads": reads,
        "model_host_reads": model_reads,
        "syncs": 0,
        "host_reads_per_iter": reads / 4,
        "h2d_copies": 8,
        "h2d_pinned": pinned,
        "h2d_non_blocking": 8,
        "recompiles": 0,
        "cards_touched": [[0], [1]],
        "budget_broken": broken,
    }


def test_the_conduct_table_shows_each_cell_and_flags_a_broken_budget(tmp_path):
    kept = conduct(4, 0, 8, [])
    broken = {**conduct(12, 8, 2, ["rank 1: 6 batch copies not pinned"]), "sync_ops": 20}
    broken["model_sync_ops"] = 18
    write_run(tmp_path, rec("gpu-a", cards=2, conduct=kept))
    write_run(tmp_path, rec("gpu-a", cards=2, precision="fp16", conduct=broken))
    write_run(tmp_path, rec("gpu-a", cards=1))  # an older record: no conduct, no row
    records = [json.loads(line) for line in (tmp_path / RECORDS_FILE).read_text().splitlines()]
    table = conduct_table(frame(records)).set_index("precision")
    assert list(table.index) == ["fp32", "fp16"]
    assert table.loc["fp32", "host reads/it (model's)"] == "1 (0)"
    assert table.loc["fp16", "host reads/it (model's)"] == "3 (2)"
    # blocking ops: counted by newer records only
    assert table.loc["fp16", "blocking ops/it (model's)"] == "5 (4.5)"
    assert table.loc["fp32", "blocking ops/it (model's)"] == "- (-)"
    assert (
        table.loc["fp32", "pinned/copies"] == "8/8" and table.loc["fp16", "pinned/copies"] == "2/8"
    )
    assert table.loc["fp32", "budget"] == "ok"
    assert table.loc["fp16", "budget"] == "rank 1: 6 batch copies not pinned"
    assert table.loc["fp32", "cards_touched"] == "[[0], [1]]"


def test_the_three_throughputs_stand_side_by_side_with_the_data_bound_share(tmp_path):
    three = dict(throughput_whole_img_s=8.0, throughput_compute_only_img_s=40.0)
    write_run(tmp_path, rec("gpu-a", throughput_img_s=30.0, data_bound_share=0.25, **three))
    write_run(tmp_path, rec("gpu-a", throughput_img_s=10.0))  # older: no compute-only, no row
    records = [json.loads(line) for line in (tmp_path / RECORDS_FILE).read_text().splitlines()]
    (row,) = throughputs_table(frame(records)).to_dict("records")
    assert (row["whole"], row["train_only (window)"], row["compute_only"]) == (
        "8.0",
        "30.0",
        "40.0",
    )
    assert row["data-bound share"] == "25%" and row["runs"] == 1


def test_compiled_cells_say_how_they_compiled_and_on_how_many_buckets():
    buckets = ["800x992", "992x800", "800x1184", "1184x800", "800x1344", "1344x800", "1344x1344"]
    runs = [
        rec("h", compile=True, compile_shapes="static", shape_buckets=buckets),
        rec("h", compile=True, compile_shapes="dynamic", throughput_img_s=2.0),
        rec("h", compile=True),  # older: compiled, no more said
    ]
    workloads = sorted(training_table(frame(runs))["workload"])
    assert [w.rsplit(", ", 1)[-1] for w in workloads] == [
        "compile",
        "compile dynamic",
        "compile static on 7 shape buckets",
    ]
