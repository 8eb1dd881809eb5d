"""How the adapters react when a vendor plug-in IS present.

SIMULATION: no CUDA, MLU or NPU card exists on the test machine. Each test starts a fresh Python
with a stand-in module (`torch_mlu`, `torch_npu`, or a patch of `torch.cuda`) on its path that
registers a fake backend namespace with two cards. This checks the selection logic (auto order,
card index, LOCAL_RANK, precisions, collective backend, synchronize/seed calls) and nothing
about real hardware.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

STAND_IN = textwrap.dedent(
    '''
    """SIMULATION: a stand-in vendor plug-in for adapter tests; it drives no hardware."""
    import types

    import torch

    __version__ = "0.0-simulated"
    calls = []

    def _namespace(name, bf16=True, capability=(9, 0)):
        ns = types.SimpleNamespace()
        ns.is_available = lambda: True
        ns.device_count = lambda: 2
        ns.get_device_name = lambda i=0: f"{name.upper()} simulated card {i}"
        ns.get_device_properties = lambda i=0: types.SimpleNamespace(total_memory=32 * 2**30)
        ns.get_device_capability = lambda i=0: capability
        ns.set_device = lambda i: calls.append(("set_device", i))
        ns.synchronize = lambda i=None: calls.append(("synchronize", i))
        ns.manual_seed_all = lambda s: calls.append(("manual_seed_all", s))
        ns.is_bf16_supported = lambda: bf16
        ns.reset_peak_memory_stats = lambda i=None: calls.append(("reset_peak", i))
        ns.max_memory_allocated = lambda i=None: 123 * 2**20
        return ns
    '''
)

PLUGINS = {
    # like the real torch_mlu: PrivateUse1 renamed, a device module that names its amp dtypes
    "torch_mlu": (
        "torch.utils.rename_privateuse1_backend('mlu')\n"
        "mlu = _namespace('mlu')\n"
        "mlu.get_amp_supported_dtype = lambda: [torch.float16, torch.bfloat16]\n"
        "torch._register_device_module('mlu', mlu)\n"
    ),
    "torch_npu": (
        "torch.npu = _namespace('npu', bf16=False)\n"
        "torch.npu.matmul = types.SimpleNamespace(allow_hf32=True)\n"
        "torch.npu.conv = types.SimpleNamespace(allow_hf32=True)\n"
    ),
    # torch.cuda exists in every build; the stand-in only makes it report two cards.
    "fake_cuda": (
        "for k, v in vars(_namespace('cuda', capability=(7, 0))).items():\n"
        "    setattr(torch.cuda, k, v)\n"
    ),
}


def run_with(plugins: list[str], script: str, tmp_path, env: dict | None = None) -> dict:
    for name in plugins:
        (tmp_path / f"{name}.py").write_text(STAND_IN + PLUGINS[name])
    prelude = "".join(f"import {p}\n" for p in plugins if p == "fake_cuda")
    code = prelude + textwrap.dedent(script)
    full_env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    full_env.pop("LOCAL_RANK", None)
    full_env.update(env or {})
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_simulated_mlu_is_chosen_by_auto_and_indexed(tmp_path):
    result = run_with(
        ["torch_mlu"],
        """
        import json, torch_mlu
        from rcnn.device import resolve, DeviceError
        a, i = resolve("auto")
        b, j = resolve("mlu:1")
        b.set_device(j); b.synchronize(j); b.manual_seed(3)
        try:
            resolve("mlu:2"); past = None
        except DeviceError as e:
            past = str(e)
        print(json.dumps({"auto": [a.name, i], "explicit": [b.name, j], "past": past,
                          "dist": b.dist_backend, "env": b.visible_devices_env,
                          "precisions": b.supported_precisions(), "plugin": b.plugin_version(),
                          "cards": [c.name for c in b.cards()], "calls": torch_mlu.calls}))
        """,
        tmp_path,
    )
    assert result["auto"] == ["mlu", 0] and result["explicit"] == ["mlu", 1]
    assert "'mlu:2' requested but only 2 mlu card(s)" in result["past"]
    assert result["dist"] == "cncl" and result["env"] == "MLU_VISIBLE_DEVICES"
    # the stand-in holds no tensors: a convolution under autocast fails, so fp16/bf16 are refused
    assert result["precisions"] == ["fp32"]
    assert result["plugin"] == "0.0-simulated"
    assert result["cards"] == ["MLU simulated card 0", "MLU simulated card 1"]
    assert ["set_device", 1] in result["calls"] and ["synchronize", 1] in result["calls"]
    assert ["manual_seed_all", 3] in result["calls"]


def test_simulated_npu_takes_local_rank_and_turns_hf32_off_for_fp32(tmp_path):
    result = run_with(
        ["torch_npu"],
        """
        import json, torch, torch_npu
        from rcnn.device import resolve, DeviceError
        a, i = resolve("npu")
        a.configure_precision("fp32")
        hf32_fp32 = [torch.npu.matmul.allow_hf32, torch.npu.conv.allow_hf32]
        a.configure_precision("tf32")
        hf32_tf32 = [torch.npu.matmul.allow_hf32, torch.npu.conv.allow_hf32]
        try:
            resolve("npu", "bf16"); bf16 = None
        except DeviceError as e:
            bf16 = str(e)
        print(json.dumps({"sel": [a.name, i], "dist": a.dist_backend,
                          "env": a.visible_devices_env, "fp32": hf32_fp32,
                          "tf32": hf32_tf32, "bf16": bf16}))
        """,
        tmp_path,
        env={"LOCAL_RANK": "1"},
    )
    assert result["sel"] == ["npu", 1]  # torchrun's LOCAL_RANK picks the card
    assert result["dist"] == "hccl" and result["env"] == "ASCEND_RT_VISIBLE_DEVICES"
    assert result["fp32"] == [False, False] and result["tf32"] == [True, True]
    assert "precision 'bf16' is not supported on npu" in result["bf16"]


def test_simulated_cuda_prefers_cuda_and_refuses_tf32_before_ampere(tmp_path):
    result = run_with(
        ["fake_cuda", "torch_mlu"],
        """
        import json
        from rcnn.device import resolve, DeviceError
        a, i = resolve("auto")
        try:
            resolve("cuda:0", "tf32"); tf32 = None
        except DeviceError as e:
            tf32 = str(e)
        print(json.dumps({"auto": a.name, "dist": a.dist_backend, "tf32": tf32,
                          "precisions": a.supported_precisions()}))
        """,
        tmp_path,
    )
    assert result["auto"] == "cuda" and result["dist"] == "nccl"
    assert result["precisions"] == ["fp32", "fp16", "bf16"]  # capability 7.0: no TF32
    assert "precision 'tf32' is not supported on cuda" in result["tf32"]


@pytest.mark.parametrize("broken", ["raise RuntimeError('libcnrt.so: cannot open')"])
def test_a_broken_plugin_says_why(tmp_path, broken):
    (tmp_path / "torch_mlu.py").write_text(broken + "\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    code = "from rcnn.device import resolve\nresolve('mlu')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode != 0
    assert "torch_mlu failed to import (RuntimeError: libcnrt.so: cannot open)" in out.stderr


# An out-of-tree device with nothing optional: no card name, properties, memory statistics,
# bf16 query, RNG state or amp dtypes (what the strict test device hides behind its flag).
BARE = (
    "torch.utils.rename_privateuse1_backend('bare')\n"
    "bare = types.ModuleType('bare')\n"
    "bare.is_available = lambda: True\n"
    "bare.device_count = lambda: 1\n"
    "bare.set_device = lambda i: None\n"
    "bare.synchronize = lambda i=None: calls.append(('synchronize', i))\n"
    "torch._register_device_module('bare', bare)\n"
)


def test_a_bare_plugin_degrades_to_null_fields_and_notes(tmp_path):
    (tmp_path / "torch_bare.py").write_text(STAND_IN + BARE)
    result = run_with(
        [],
        """
        import json
        import torch_bare
        from rcnn.device import DeviceError, all_adapters, resolve
        from benchmark.record import new_record, validate
        out = {"listed": [a.name for a in all_adapters()]}
        a, i = resolve("bare")
        a.reset_peak_memory(i); a.synchronize(i); a.set_rng_state(None, i)
        out.update(cards=[[c.name, c.memory_mb] for c in a.cards()], peak=a.peak_memory_mb(i),
                   rng=a.rng_state(i), precisions=a.supported_precisions(), calls=torch_bare.calls)
        try:
            a.check_precision("bf16")
        except DeviceError as e:
            out["bf16"] = str(e)
        rec = new_record(adapter=a, mode="infer", model="m", precision="fp32",
                         throughput_img_s=1.0)
        out.update(device_name=rec["device_name"], notes=rec["notes"], problems=validate(rec))
        print(json.dumps(out))
        """,
        tmp_path,
        env={"RCNN_DEVICE_PLUGIN": "torch_bare"},
    )
    assert "bare" in result["listed"]  # `benchmark devices` lists the plug-in's device
    assert result["cards"] == [[None, None]] and result["peak"] is None and result["rng"] is None
    assert ["synchronize", 0] in result["calls"]  # its own synchronize, not torch.accelerator's
    assert result["precisions"] == ["fp32"]  # autocast cannot cover it: no fp16/bf16 label
    # decided without touching a card, in one line that keeps the missing function's name
    refused = "precision 'bf16' is not supported on bare (no torch autocast: AssertionError"
    # the reason keeps the name of the function the plug-in lacks (which one torch checks first
    # depends on its release: get_amp_supported_dtype, or is_autocast_enabled on torch 2.1)
    assert refused in result["bf16"] and re.search(r"the func `\w+` is missing", result["bf16"])
    assert "\n" not in result["bf16"]
    assert result["device_name"] is None and result["problems"] == []
    for missing in ("card name", "card memory", "memory statistics", "RNG state", "bf16"):
        assert any(missing in note for note in result["notes"]), (missing, result["notes"])
