"""rcnn.compat on the installed torch (the pinned one, and 2.1 in CI's oldest lane)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from strict import run_python

from rcnn import compat
from rcnn.device import get_adapter

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_parsed_from_release_and_vendor_strings():
    assert compat.torch_version() >= compat.MIN_TORCH
    assert compat.unsupported_reason() is None


def test_autocast_availability():
    assert compat.autocast_available("cpu") is True
    assert compat.autocast_available("meta") is False


def test_disabled_cpu_scaler_passes_a_training_step_through():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    scaler = get_adapter("cpu").grad_scaler("bf16")
    before = layer.weight.detach().clone()
    loss = layer(torch.ones(1, 3)).sum()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    # loss = w.x + b with x = 1: d/dw = 1, so one SGD step moves each weight by exactly -lr
    torch.testing.assert_close(layer.weight.detach(), before - 0.5)
    assert scaler.is_enabled() is False


def test_out_of_memory_errors_cover_the_cuda_class_of_every_supported_torch():
    assert MemoryError in compat.OUT_OF_MEMORY_ERRORS
    assert issubclass(torch.cuda.OutOfMemoryError, compat.OUT_OF_MEMORY_ERRORS)


def test_process_group_device_only_where_init_process_group_takes_it():
    assert compat.process_group_device(None) == {}
    given = compat.process_group_device(torch.device("cpu"))
    assert given == ({"device_id": torch.device("cpu")} if compat.torch_version() >= (2, 3) else {})


# the release each torch.accelerator feature arrived in (DESIGN.md, "Vendor stacks")
ACCELERATOR_RELEASES = {"synchronize": (2, 6), "max_memory_allocated": (2, 9)}


def test_accelerator_functions_follow_the_torch_release():
    version = compat.torch_version()
    assert compat.has_accelerator_api() == (version >= (2, 6))
    for function, release in ACCELERATOR_RELEASES.items():
        found = compat.accelerator_function(function)
        assert (found is not None) == (version >= release), (function, torch.__version__)
        if found is not None:
            assert found is getattr(torch.accelerator, function)
    assert compat.accelerator_function("no_such_function") is None
    # this host has no accelerator: torch.accelerator (where it exists) names none
    assert compat.current_accelerator_type() is None
    assert compat.privateuse1_name() is None  # nothing renamed PrivateUse1 in this process


@pytest.mark.strictdev
@pytest.mark.skipif(
    not hasattr(torch, "accelerator"), reason="torch.accelerator arrived in torch 2.6"
)
def test_accelerator_functions_serve_a_renamed_privateuse1_device():
    out = run_python(
        """
        from rcnn import compat
        from rcnn.device import get_adapter
        adapter = get_adapter("strict")
        adapter.synchronize(0)  # the module's own synchronize is hidden: torch.accelerator's
        print(json.dumps({
            "current": compat.current_accelerator_type(),
            "renamed": compat.privateuse1_name(),
            "sync": compat.accelerator_function("synchronize") is torch.accelerator.synchronize,
            "via_accelerator": adapter.can_sync_via_accelerator(),
            "syncs": torch.strict.counters()["synchronize"],
            "notes": adapter.notes(),
        }))
        """,
        hide="synchronize",
    )
    assert out == {
        "current": "strict",
        "renamed": "strict",
        "sync": True,
        "via_accelerator": True,
        "syncs": 1,
        "notes": [],
    }


def run_below_floor(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """A real process whose torch says it is 2.0.1 (set in sitecustomize, before any import)."""
    (tmp_path / "sitecustomize.py").write_text("import torch\ntorch.__version__ = '2.0.1'\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "models"), str(ROOT)]),
    }
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )


def test_below_the_floor_every_entry_point_stops_with_one_line(tmp_path):
    for args in (["-c", "import rcnn"], ["-m", "benchmark", "devices"]):
        out = run_below_floor(*args, tmp_path=tmp_path)
        assert out.returncode == 1, out.stderr
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith("error: rcnn-bench needs torch >= 2.1") and "2.0.1" in line
