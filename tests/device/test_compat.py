"""rcnn.compat on the installed torch (the pinned one, and 2.1 in CI's oldest lane)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from strict import NEEDS_ACCELERATOR, run_python

from rcnn import compat
from rcnn.device import get_adapter
from rcnn.device.reasons import reason
from rcnn.layers import precision

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_parsed_from_release_and_vendor_strings():
    assert compat.torch_version() >= compat.MIN_TORCH
    assert compat.unsupported_reason() is None


def test_autocast_availability():
    assert compat.autocast_available("cpu") is True
    assert compat.autocast_available("meta") is False


def test_autocast_that_cannot_be_constructed_means_no_autocast_for_layers_too(monkeypatch):
    # What torch raises for a plug-in module without get_amp_supported_dtype (torch 2.4+ still
    # calls the type available): an AssertionError whose last line names the function.
    def thin_plugin_autocast(device_type, **kwargs):
        if device_type == "cpu":
            raise AssertionError(
                "Tried to use AMP with the `cpu` backend, but the backend has not registered a "
                "module or the module misses some necessary funcs.\n"
                "But the func `get_amp_supported_dtype` is missing.\n"
            )
        return contextlib.nullcontext()

    compat.autocast_error.cache_clear()
    monkeypatch.setattr(torch, "autocast", thin_plugin_autocast)
    try:
        error = compat.autocast_error("cpu")
        assert isinstance(error, AssertionError)
        assert compat.autocast_available("cpu") is False
        assert isinstance(precision.autocast_off(torch.device("cpu")), contextlib.nullcontext)
        line = reason(error)
        assert "`get_amp_supported_dtype` is missing" in line and "\n" not in line
    finally:
        compat.autocast_error.cache_clear()


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
@NEEDS_ACCELERATOR
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


def test_is_compiling_is_true_only_while_dynamo_traces():
    """The backbone's kept folds step aside under torch.compile on this question."""
    seen = []

    def traced(x: torch.Tensor) -> torch.Tensor:
        seen.append(compat.is_compiling())
        return x + 1

    assert compat.is_compiling() is False
    torch.compile(traced, backend="eager")(torch.ones(2))
    assert seen == [True]
