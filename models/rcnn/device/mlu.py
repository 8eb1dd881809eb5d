"""Cambricon MLU through the torch_mlu plug-in (torch.mlu mirrors torch.cuda)."""

from __future__ import annotations

import torch

from .base import DeviceAdapter


class MluAdapter(DeviceAdapter):
    name = "mlu"
    plugin = "torch_mlu"
    dist_backend = "cncl"
    visible_devices_env = "MLU_VISIBLE_DEVICES"
    install_hint = "use the Cambricon PyTorch image: docker/Dockerfile.mlu"

    def _tf32_switches(self) -> list:
        # torch_mlu exposes TF32 switches for matmul and for CNNL convolutions (MLU 5xx).
        backends = [getattr(torch.backends, "mlu", None), getattr(torch.backends, "cnnl", None)]
        found = [getattr(b, "matmul", b) for b in backends if b is not None]
        return [s for s in found if hasattr(s, "allow_tf32")]

    def supported_precisions(self) -> tuple[str, ...]:
        base = super().supported_precisions()
        return ("fp32", "tf32", *base[1:]) if self._tf32_switches() else base

    def configure_precision(self, precision: str) -> None:
        self.check_precision(precision)
        for switch in self._tf32_switches():
            switch.allow_tf32 = precision == "tf32"
