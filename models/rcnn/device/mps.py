"""Apple GPUs through Metal (one device, no collectives)."""

from __future__ import annotations

import torch

from .base import DeviceAdapter


class MpsAdapter(DeviceAdapter):
    name = "mps"
    peak_memory_kind = "driver_allocated_now"  # MPS reports no peak: the current total
    install_hint = "MPS needs an Apple-silicon Mac with a macOS torch build"

    def unavailable_reason(self) -> str | None:
        if not torch.backends.mps.is_built():
            return "this torch build has no MPS support"
        if not torch.backends.mps.is_available():
            return "no Metal device is available"
        return None

    def device_count(self) -> int:
        return 1 if self.unavailable_reason() is None else 0

    def card_name(self, index: int) -> str:
        return "Apple GPU (Metal)"

    def card_memory_mb(self, index: int) -> float | None:
        return torch.mps.recommended_max_memory() / 2**20

    def set_device(self, index: int) -> None:
        pass  # a single device

    def synchronize(self, index: int | None = None) -> None:
        torch.mps.synchronize()

    def reset_peak_memory(self, index: int | None = None) -> None:
        pass  # Metal keeps no peak counter; peak_memory_mb reports the driver's current size

    def peak_memory_mb(self, index: int | None = None) -> float | None:
        return torch.mps.driver_allocated_memory() / 2**20

    def supports_bf16(self) -> bool:
        return torch.backends.mps.is_macos_or_newer(14, 0)
