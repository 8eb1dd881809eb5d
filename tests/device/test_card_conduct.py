"""Each process uses its own card (issue 20, points 1, 2 and 7), held on the strict device:
the launcher's parent touches none, a worker probes precisions on its own card, batch copies are
pinned where the backend pins (a renamed PrivateUse1 too), and records name the card used."""

import json

import pytest
import torch
from strict import NEEDS_ACCELERATOR, bench, run_python

from rcnn.device.cuda import CudaAdapter

TINY = ("--size", "64x96", "--data", "synthetic:2", "--batch", "1", "--warmup", "0")
QUICK = ("--model", "faster_rcnn_R_18_FPN_quick", *TINY)


def records(results) -> list[dict]:
    return [json.loads(line) for line in (results / "records.jsonl").read_text().splitlines()]


@pytest.mark.strictdev
def test_precisions_are_claimed_without_a_card_and_probed_on_the_bound_card():
    out = run_python(
        """
        from rcnn.device import resolve
        adapter, index = resolve("strict:1", "bf16")  # the parent's checks: no card touched
        parent = torch.strict.counters()["cards_touched"]
        adapter.set_device(index)
        adapter.configure_precision("bf16")  # the worker's: the probe on its own card
        print(json.dumps([parent, torch.strict.counters()["cards_touched"]]))
        """
    )
    assert out == [[], [1]]


@pytest.mark.strictdev
def test_the_launchers_parent_touches_no_card_and_each_rank_only_its_own(tmp_path):
    run = ("infer", "--device", "strict", *QUICK, "--cards", "2")
    violations = tmp_path / "violations.txt"  # a touch a probe's `except` swallowed is kept
    done = bench(*run, results=tmp_path, strict="1", violations=str(violations))
    assert done.returncode == 0, done.stderr[-3000:]
    assert not violations.exists(), violations.read_text()
    (r,) = records(tmp_path)
    assert (r["status"], r["cards"]) == ("ok", 2)
    assert r["device_name"] == "Strict test card 0"  # rank 0's card, which wrote the record


@pytest.mark.strictdev
def test_a_run_on_card_1_records_card_1(tmp_path):
    done = bench("infer", "--device", "strict:1", *QUICK, "--iters", "1", results=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (r,) = records(tmp_path)
    assert r["device_name"] == "Strict test card 1"


@pytest.mark.strictdev
@NEEDS_ACCELERATOR  # pin_memory() pins for torch.accelerator's device
def test_batch_copies_are_pinned_and_non_blocking_on_a_renamed_privateuse1():
    out = run_python(
        """
        from rcnn.device import get_adapter
        from rcnn.engine.prefetch import prefetch_to_device
        from rcnn.structures.image_list import ImageList
        adapter = get_adapter("strict")
        batches = [(ImageList(torch.rand(1, 3, 8, 8), [(8, 8)]), [torch.rand(2, 4)], [i])
                   for i in range(3)]
        torch.strict.reset_counters()
        moved = list(prefetch_to_device(batches, adapter, 0))
        print(json.dumps({"pins": adapter.supports_pinned_memory(),
                          "counts": torch.strict.counters(),
                          "device": str(moved[0][0].tensors.device)}))
        """
    )
    assert out["pins"] is True and out["device"] == "strict:0"
    counts = out["counts"]
    assert counts["h2d"] >= 6  # images and targets of three batches
    assert counts["h2d_pinned"] == counts["h2d_non_blocking"] == counts["h2d"]


def test_cuda_tf32_support_is_read_from_the_card_the_process_uses(monkeypatch):
    # SIMULATION: a host with a Volta card 0 and an Ampere card 1; no CUDA here.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: [(7, 0), (8, 0)][i])
    adapter = CudaAdapter()
    assert "tf32" not in adapter.supported_precisions()  # no card bound yet: card 0
    adapter.card = 1
    assert "tf32" in adapter.supported_precisions()
