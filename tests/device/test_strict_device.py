"""The quick path on the strict test device, as a user runs it (issue 12, "Why" points 1-5).

Each run is a real `python -m benchmark` process with RCNN_DEVICE_PLUGIN=strictdev; the device
raises on a host tensor mixed into a card op, on Tensor.repeat (unfold) and on torchvision ops,
so a run that completes here made every tensor on the card it ran on.
"""

import json
import subprocess
import sys
import textwrap

import pytest
from strict import ROOT, bench, strict_env

pytestmark = pytest.mark.strictdev
TINY = ("--size", "64x64", "--data", "synthetic:2")


def records(results) -> list[dict]:
    return [json.loads(line) for line in (results / "records.jsonl").read_text().splitlines()]


def test_devices_lists_the_plugin_device():
    """Point 1: `devices` listed only the built-in backends."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmark", "devices", "--json"],
        capture_output=True,
        text=True,
        env=strict_env(),
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = [r for r in json.loads(done.stdout)["backends"] if r["backend"] == "strict"]
    assert row["available"] and row["plugin"] == "strictdev"
    assert [c["name"] for c in row["cards"]] == ["Strict test card 0", "Strict test card 1"]
    assert row["precisions"] == ["fp32", "fp16", "bf16"]
    assert row["dist_backend"] == "cpu:host_staged,strict:host_staged"  # no collective of its own
    assert set(row["ops"].values()) == {"native"}  # torchvision has no kernels for it


@pytest.mark.parametrize(
    "model",
    ["faster_rcnn_R_18_FPN_quick", "mask_rcnn_R_18_FPN_quick", "libra_faster_rcnn_R_18_FPN_quick"],
)
def test_quick_config_trains_and_infers_on_the_card(model, tmp_path):
    """Point 4 too: RPN post-processing used Tensor.repeat, which lowers to unfold."""
    run = ("--model", model, "--device", "strict", *TINY, "--batch", "1", "--warmup", "0")
    trained = bench("train", *run, "--iters", "3", results=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    inferred = bench("infer", *run, results=tmp_path)
    assert inferred.returncode == 0, inferred.stderr[-3000:]
    train, infer = records(tmp_path)
    for r in (train, infer):
        assert (r["status"], r["device_type"], r["device_name"]) == (
            "ok",
            "strict",
            "Strict test card 0",
        )
        assert r["compute_dtype"] == "float32" and r["peak_mem_mb"] > 0
        assert set(r["ops"].values()) == {"native"}
    assert train["measured_iters"] == 3 and train["final_loss"] > 0
    assert infer["latency_ms"]["p50"] > 0


def test_two_processes_join_through_host_staged_gloo(tmp_path):
    """Point 3: init_process_group got device_id, and gloo refused the plug-in's device type."""
    run = ("--model", "faster_rcnn_R_18_FPN_quick", "--device", "strict", *TINY, "--batch", "1")
    done = bench("infer", *run, "--cards", "2", "--warmup", "0", results=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (r,) = records(tmp_path)
    assert (r["status"], r["cards"], r["global_batch"]) == ("ok", 2, 2)
    assert r["accuracy"]["bbox_ap"] is not None  # both ranks' predictions gathered and scored


DDP_SCRIPT = """
import json, torch, strictdev
from rcnn.device import resolve
from rcnn.utils import comm

adapter, index = resolve("strict:0")  # torch's Python device guard gives autograd one card
comm.init_distributed(adapter, index, timeout_s=120)
rank = comm.get_rank()
torch.manual_seed(rank)  # different weights per rank: DDP must broadcast rank 0's
model = torch.nn.Linear(3, 1).to(adapter.torch_device(index))
ddp = torch.nn.parallel.DistributedDataParallel(model)
x = torch.full((2, 3), float(rank + 1), device=adapter.torch_device(index))
ddp(x).sum().backward()
loss = comm.reduce_loss_dict({"loss": torch.tensor(float(rank + 1), device=x.device)})["loss"]
grad = model.weight.grad
# one file per rank: two ranks printing to one pipe can interleave their lines
with open(f"rank{rank}.json", "w") as out:
    json.dump({"rank": rank, "weight": model.weight.detach().cpu().tolist(),
               "grad": grad.cpu().tolist(), "grad_device": str(grad.device),
               "loss": loss.item(), "gathered": comm.all_gather_objects(rank)}, out)
comm.shutdown()
"""


def test_ddp_on_the_card_reduces_gradients_through_the_host(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    env = strict_env()
    env["PYTHONPATH"] = f"{ROOT / 'models'}:{env['PYTHONPATH']}"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        + [str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1]
    first, second = ranks
    assert first["weight"] == second["weight"]  # rank 0's weights reached rank 1
    # d(sum(W x))/dW summed over 2 rows of x = 2 * (rank + 1): averaged over ranks, 3
    assert first["grad"] == second["grad"] == [[3.0, 3.0, 3.0]]
    assert {r["grad_device"] for r in ranks} == {"strict:0"}
    assert first["loss"] == second["loss"] == 1.5
    assert first["gathered"] == second["gathered"] == [0, 1]


def test_bf16_is_refused_where_the_cards_autocast_covers_nothing(tmp_path):
    """Point 5: autocast that covered no op ran fp32 work under a bf16 label (the sweep below
    shows bf16 running in bfloat16 where the card's autocast covers convolutions)."""
    run = ("--model", "faster_rcnn_R_18_FPN_quick", "--device", "strict", *TINY, "--batch", "1")
    train = ("train", *run, "--iters", "1", "--warmup", "0", "--precision", "bf16")
    refused = bench(*train, results=tmp_path, autocast="none")
    assert refused.returncode == 2
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .startswith("error: precision 'bf16' is not supported on strict")
    )
    (r,) = records(tmp_path)
    assert r["status"] == "failed" and r["throughput_img_s"] is None


def test_sweep_on_the_card(tmp_path):
    done = bench(
        "sweep", "--model", "faster_rcnn_R_18_FPN_quick", "--device", "strict", "--mode", "infer",
        "--precisions", "fp32,tf32,bf16", "--cards", "1,4", "--batches", "1", *TINY,
        "--iters", "1", "--warmup", "0", results=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    cells = {(r["precision"], r["cards"]): r for r in records(tmp_path)}
    assert cells[("fp32", 1)]["status"] == cells[("bf16", 1)]["status"] == "ok"
    assert cells[("bf16", 1)]["compute_dtype"] == "bfloat16"
    assert cells[("tf32", 1)]["status"] == "skipped"  # the strict device has no TF32 switch
    assert {cells[(p, 4)]["status"] for p in ("fp32", "tf32", "bf16")} == {"skipped"}  # 2 cards
