"""A thin plug-in, as a new user meets one (issue 26), modelled by the strict device's gap
switches: the harness degrades and says what is missing in one line, never crashes."""

import json
import os
import subprocess
import sys

import pytest
from strict import ROOT, bench, strict_env

pytestmark = pytest.mark.strictdev
SMALL = ("--size", "64x96", "--data", "synthetic:2")
QUICK = ("--model", "faster_rcnn_R_18_FPN_quick", *SMALL, "--warmup", "0")
ONE_CARD = {"cards": "1"}
NMS_CASE = ("--case", "2000 RPN", "--repeats", "1", "--warmup", "0")


def cli(*args: str, env: dict | None = None, **flags: str) -> subprocess.CompletedProcess:
    """`python -m benchmark ARGS` on the strict device, for verbs that write no record."""
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *args],
        capture_output=True,
        text=True,
        env=env or strict_env(**flags),
        cwd=ROOT,
        timeout=600,
        check=False,
    )


def records(results) -> list[dict]:
    return [json.loads(line) for line in (results / "records.jsonl").read_text().splitlines()]


def assert_one_line_errors(done) -> None:
    assert "Traceback" not in done.stdout + done.stderr
    for line in done.stderr.splitlines():
        assert len(line) < 600, line  # no dispatcher dump folded into a line


@pytest.mark.parametrize(
    "gap",
    [
        {"hide": "synchronize,name,properties,seed"},
        {"hide": "amp"},
        {"hide": "memory", "accelerator": "sync"},
        {"missing": "sort"},
        {"missing": "convolution"},
    ],
    ids=["no-synchronize", "no-amp-dtypes", "no-memory", "no-sort", "no-convolution"],
)
def test_devices_and_ops_exit_0_with_one_line_reasons(gap):
    flags = {**ONE_CARD, **gap}
    devices = cli("devices", "--json", **flags)
    assert devices.returncode == 0, devices.stderr[-3000:]
    (row,) = [r for r in json.loads(devices.stdout)["backends"] if r["backend"] == "strict"]
    ops = cli("ops", "--device", "strict", *NMS_CASE, **flags)
    assert ops.returncode == 0, ops.stderr[-3000:]
    assert_one_line_errors(ops)
    preamble = ops.stdout.splitlines()[0]
    if "sort" in gap.get("missing", ""):
        missing = "unusable: aten::sort.stable missing"
        assert row["ops"] == dict.fromkeys(("nms", "roi_align", "roi_pool"), missing)
        assert "native unusable: aten::sort.stable missing" in ops.stdout
        assert f"{missing}        n/a" in ops.stdout  # the nms row says why it has no times
    else:
        assert row["ops"] == dict.fromkeys(("nms", "roi_align", "roi_pool"), "native")
    memory = "memory" not in gap.get("hide", "")  # torch.accelerator's stays in the default
    assert row["capabilities"] == {
        "sync_via_accelerator": True,
        "memory_stats": memory,
        "pinned_memory": True,
    }
    if "amp" in gap.get("hide", ""):
        assert row["precisions"] == ["fp32"]
        assert any("`get_amp_supported_dtype` is missing" in n for n in row["notes"])
    if "convolution" in gap.get("missing", ""):
        assert row["precisions"] == ["fp32"]  # the autocast probe's convolution cannot run
        assert any("aten::convolution missing" in n for n in row["notes"]), row["notes"]
    if "name" in gap.get("hide", ""):
        assert preamble.startswith("device: strict:0 (unnamed strict card, 1 card)")
        assert [c["name"] for c in row["cards"]] == [None]


def test_infer_and_train_run_on_torch_accelerator_without_the_modules_sync_and_memory(tmp_path):
    flags = {**ONE_CARD, "hide": "synchronize,memory"}
    run = ("--device", "strict", *QUICK, "--iters", "2")
    inferred = bench("infer", *run, results=tmp_path, **flags)
    assert inferred.returncode == 0, inferred.stderr[-3000:]
    trained = bench("train", *run, results=tmp_path, **flags)
    assert trained.returncode == 0, trained.stderr[-3000:]
    for r in records(tmp_path):
        assert r["status"] == "ok" and r["throughput_img_s"] > 0
        assert r["peak_mem_mb"] > 0  # torch.accelerator's statistics, not null
        assert not any("synchronize" in n or "memory" in n for n in r["notes"] or []), r["notes"]


@pytest.mark.parametrize(
    ("verb", "missing", "operator"),
    [
        ("infer", "sort", "aten::sort.stable"),
        ("train", "sort", "aten::sort.stable"),
        ("infer", "convolution", "aten::convolution"),
        ("verify", "convolution", "aten::convolution"),
    ],
)
def test_a_model_needing_a_missing_operator_ends_in_one_line_naming_it(
    tmp_path, verb, missing, operator
):
    iters = () if verb == "verify" else ("--iters", "1")
    done = bench(
        verb, "--device", "strict", *QUICK, *iters, results=tmp_path, missing=missing, **ONE_CARD
    )
    assert done.returncode != 0
    assert_one_line_errors(done)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and f"{operator} missing" in last, done.stderr[-3000:]
    (r,) = records(tmp_path)
    assert r["status"] == "failed" and f"{operator} missing" in r["error"]
    assert "\n" not in r["error"]


def installed_hook_plugin(site) -> None:
    """A plug-in installed as pip would: no __version__, its version in the package metadata,
    its device registered by a `torch.backends` entry point (torch's autoload hook)."""
    (site / "hookdev").mkdir()
    (site / "hookdev" / "__init__.py").write_text("")
    (site / "hookdev" / "register.py").write_text("def register():\n    import strictdev\n")
    info = site / "hookdev-2.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hookdev\nVersion: 2.3.1\n")
    (info / "top_level.txt").write_text("hookdev\n")
    hook = "[torch.backends]\nhookdev = hookdev.register:register\n"
    (info / "entry_points.txt").write_text(hook)


def test_a_plugin_registering_through_its_entry_point_is_loaded_with_autoload_off(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    installed_hook_plugin(site)
    env = strict_env(cards="1")
    env.update(
        RCNN_DEVICE_PLUGIN="hookdev",
        TORCH_DEVICE_BACKEND_AUTOLOAD="0",
        PYTHONPATH=os.pathsep.join([str(site), env["PYTHONPATH"]]),
    )
    done = cli("devices", "--json", "--no-preflight", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["backend"]: r for r in json.loads(done.stdout)["backends"]}
    assert rows["strict"]["available"] is True
    assert (rows["strict"]["plugin"], rows["strict"]["plugin_version"]) == ("hookdev", "2.3.1")


def test_a_sweep_cell_needing_a_missing_operator_fails_in_one_line_with_its_record(tmp_path):
    done = bench(
        "sweep", "--model", "faster_rcnn_R_18_FPN_quick", "--device", "strict", "--mode", "infer",
        "--precisions", "fp32", "--cards", "1", "--batches", "1", *SMALL, "--iters", "1",
        "--warmup", "0", results=tmp_path, missing="sort", **ONE_CARD,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]  # every cell left its record
    assert_one_line_errors(done)
    assert any("aten::sort.stable missing" in line for line in done.stderr.splitlines())
    (r,) = records(tmp_path)
    assert r["status"] == "failed" and "aten::sort.stable missing" in r["error"]
