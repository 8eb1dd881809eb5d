"""Huawei Ascend NPU through the torch_npu plug-in (torch.npu mirrors torch.cuda)."""

from __future__ import annotations

import torch

from .base import DeviceAdapter


class NpuAdapter(DeviceAdapter):
    name = "npu"
    plugin = "torch_npu"
    dist_backend = "hccl"
    visible_devices_env = "ASCEND_RT_VISIBLE_DEVICES"
    install_hint = (
        "use the Ascend PyTorch image with torch_npu: docker/Dockerfile.npu "
        "(torch_npu needs a CPU build of torch and the CANN toolkit)"
    )

    def _hf32_switches(self) -> list:
        # Ascend's reduced-precision fp32 is HF32; torch_npu enables it for convolutions by default.
        npu = getattr(torch, "npu", None)
        found = [getattr(npu, "matmul", None), getattr(npu, "conv", None)]
        return [s for s in found if s is not None and hasattr(s, "allow_hf32")]

    def supported_precisions(self) -> tuple[str, ...]:
        base = super().supported_precisions()
        # "tf32" on Ascend means its HF32 mode: the same trade (fp32 in, reduced mantissa math).
        return ("fp32", "tf32", *base[1:]) if self._hf32_switches() else base

    def configure_precision(self, precision: str) -> None:
        self.check_precision(precision)
        for switch in self._hf32_switches():
            switch.allow_hf32 = precision == "tf32"
