"""NVIDIA GPUs through torch.cuda (also ROCm builds, which expose the same namespace)."""

from __future__ import annotations

import shutil
import subprocess

import torch

from rcnn import compat

from .base import DeviceAdapter


def _set_tf32(enabled: bool) -> None:
    settings = compat.fp32_precision_settings(torch.backends, "cuda.matmul", "cudnn.conv")
    if settings is not None:
        for setting in settings:
            setting.fp32_precision = "tf32" if enabled else "ieee"
    else:  # torch < 2.9
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


_AMPERE_A100 = {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0}
_HOPPER_SXM = {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4}


class CudaAdapter(DeviceAdapter):
    name = "cuda"
    # Dense (no sparsity) peaks from NVIDIA's datasheets: A100 Tensor Core GPU (SXM 80GB; its
    # PCIe and 40GB parts list the same) and H100 / H200 Tensor Core GPU (SXM columns). The
    # H100's PCIe and the NVL parts have lower peaks: listed first with none, so they stay unknown.
    PEAK_TFLOPS = (
        ("H100 PCIe", {}),
        ("H100 NVL", {}),
        ("H200 NVL", {}),
        ("A100", _AMPERE_A100),
        ("H100", _HOPPER_SXM),
        ("H200", _HOPPER_SXM),
    )
    dist_backend = "nccl"
    visible_devices_env = "CUDA_VISIBLE_DEVICES"
    compile_backend = "inductor"
    install_hint = (
        "install a CUDA build of torch (pip install -r requirements.txt) on a host with an NVIDIA "
        "driver, or use the NVIDIA image: docker/Dockerfile.cuda"
    )

    def supported_precisions(self) -> tuple[str, ...]:
        supported = ["fp32", "fp16"]
        if self.device_count() and torch.cuda.get_device_capability(0) >= (8, 0):
            supported.append("tf32")  # TF32 tensor cores arrived with Ampere
        if self.supports_bf16():
            supported.append("bf16")
        return tuple(p for p in ("fp32", "tf32", "fp16", "bf16") if p in supported)

    def configure_precision(self, precision: str) -> None:
        self.check_precision(precision)
        # fp32 means IEEE fp32: TF32 stays off unless asked for, whatever torch's default is.
        _set_tf32(precision == "tf32")

    def environment(self) -> dict[str, str | None]:
        driver = None
        if shutil.which("nvidia-smi"):
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=False,
                )
                driver = out.stdout.splitlines()[0].strip() if out.stdout else None
            except (OSError, subprocess.TimeoutExpired):
                driver = None
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        return {
            "plugin": None,
            "plugin_version": None,
            "driver": driver,
            "runtime": f"cuda {torch.version.cuda}, cudnn {cudnn}",
        }
