"""The CPU adapter, for real, on this machine."""

import json
import subprocess
import sys

import pytest
import torch

from rcnn import compat
from rcnn.device import DeviceError, get_adapter, resolve


def test_resolve_cpu_and_auto_fallback():
    adapter, index = resolve("cpu")
    assert (adapter.name, index) == ("cpu", 0)
    assert adapter.torch_device(index) == torch.device("cpu")
    auto, _ = resolve("auto")
    assert auto.name == (compat.current_accelerator_type() or "cpu")


def test_cpu_facts():
    cpu = get_adapter("cpu")
    assert cpu.is_available() and cpu.device_count() == 1
    (card,) = cpu.cards()
    assert card.memory_mb > 256 and card.name
    assert cpu.dist_backend == "gloo" and cpu.visible_devices_env is None


def test_index_past_card_count_is_refused():
    with pytest.raises(DeviceError, match=r"'cpu:1' requested but only 1 cpu card"):
        resolve("cpu:1")


@pytest.mark.parametrize(
    ("precision", "message"),
    [
        ("fp16", "not supported on cpu; this device supports fp32, bf16"),
        ("tf32", "not supported on cpu"),
        ("fp8", "unknown precision 'fp8'"),
    ],
)
def test_unsupported_precision_is_refused_before_work(precision, message):
    with pytest.raises(DeviceError, match=message):
        resolve("cpu", precision)


def test_bf16_autocast_runs_matmul_in_bf16():
    cpu = get_adapter("cpu")
    cpu.configure_precision("bf16")
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with cpu.autocast("bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with cpu.autocast("fp32"):
        assert (a @ b).dtype == torch.float32
    assert not cpu.grad_scaler("bf16").is_enabled()


@pytest.mark.parametrize("has_bf16", [True, False, None])
def test_bf16_without_onednn_kernels_is_noted_in_the_record(has_bf16, monkeypatch):
    from rcnn.device import cpu

    monkeypatch.setattr(cpu, "onednn_has_bf16", lambda: has_bf16)
    adapter = cpu.CpuAdapter()
    adapter.configure_precision("fp32")
    assert adapter.notes() == []
    adapter.configure_precision("bf16")
    assert adapter.notes() == ([cpu.SLOW_BF16] if has_bf16 is False else [])


def test_onednn_bf16_query_answers_on_this_torch():
    from rcnn.device.cpu import onednn_has_bf16

    assert onednn_has_bf16() in (True, False)  # a build with oneDNN, as every pinned one is


@pytest.mark.parametrize(
    ("capability", "modes"),
    [
        ("AVX512", {"infer", "train"}),
        ("AMX", {"infer", "train"}),
        ("AVX2", {"infer"}),
        ("DEFAULT", {"infer"}),
    ],
)
def test_the_fast_layout_trains_channels_last_only_on_avx512_kernels(
    capability, modes, monkeypatch
):
    """oneDNN's NHWC backward measured faster on an AVX-512 host and 4.6x slower on AVX2."""
    from rcnn.device import cpu

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert cpu.CpuAdapter().channels_last_modes == modes


def test_the_cpu_capability_query_answers_on_this_torch():
    assert torch.backends.cpu.get_cpu_capability()  # 2.1 has it; a torch without it trains NCHW


PEAK_SCRIPT = """
import json, torch
from rcnn.device import get_adapter
cpu = get_adapter("cpu")
cpu.reset_peak_memory()
before = cpu.peak_memory_mb()
big = torch.ones(64 * 2**20)  # 256 MiB, touched
assert float(big[-1]) == 1.0
grown = cpu.peak_memory_mb()
del big
cpu.reset_peak_memory()
print(json.dumps([before, grown, cpu.peak_memory_mb()]))
"""


def test_peak_memory_is_reset_and_measures_an_allocation():
    # a fresh process: in the suite's own, freed heap left by earlier tests can hold the
    # allocation without the RSS growing (CI saw 1672.8 MB before and after)
    done = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    before, grown, after = json.loads(done.stdout)
    assert grown - before > 200
    assert after < grown - 200  # the reset forgot the freed peak


def test_manual_seed_reproduces():
    cpu = get_adapter("cpu")
    cpu.manual_seed(7)
    a = torch.rand(4)
    cpu.manual_seed(7)
    assert torch.equal(a, torch.rand(4))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "mlu",
            "torch_mlu is not installed; use the Cambricon PyTorch image: docker/Dockerfile.mlu",
        ),
        ("npu:0", "torch_npu is not installed; use the Ascend PyTorch image"),
        ("tpu", "unknown device 'tpu'; known: auto, cuda, mlu, npu"),
        ("cpu:first", "the card index after ':' must be a number"),
    ],
)
def test_absent_devices_fail_with_what_is_missing(spec, message):
    if spec == "mlu" and get_adapter("mlu").is_available():
        pytest.skip("a real MLU is present")
    if spec == "npu:0" and get_adapter("npu").is_available():
        pytest.skip("a real NPU is present")
    with pytest.raises(DeviceError, match=message):
        resolve(spec)
