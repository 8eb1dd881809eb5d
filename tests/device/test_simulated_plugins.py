"""How the adapters react when a vendor plug-in IS present.

SIMULATION: no CUDA, MLU or NPU card exists on the test machine. Each test starts a fresh Python
with a stand-in module (`torch_mlu`, `torch_npu`, or a patch of `torch.cuda`) on its path that
registers a fake backend namespace with two cards. This checks the selection logic (auto order,
card index, LOCAL_RANK, precisions, collective backend, synchronize/seed calls) and nothing
about real hardware.
"""

import json
import os
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
    "torch_mlu": "torch.mlu = _namespace('mlu')\n",
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
    assert result["precisions"] == ["fp32", "fp16", "bf16"]
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
