"""The device adapter: everything the project needs to know about one backend.

A backend whose PyTorch namespace mirrors `torch.cuda` (cuda, mlu, npu, xpu, and most vendor
plug-ins) needs only a subclass that sets the class attributes below; the rest is generic.
Nothing outside `rcnn.device` asks which device it runs on: it asks the adapter.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from dataclasses import dataclass
from types import ModuleType

import torch

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class DeviceError(RuntimeError):
    """A device, card or precision was asked for that this machine cannot give."""


@dataclass(frozen=True)
class CardInfo:
    index: int
    name: str
    memory_mb: float | None


class DeviceAdapter:
    """One backend: subclasses set the attributes and override only where the backend differs."""

    name: str = ""
    plugin: str | None = None  # module to import first (torch_mlu, torch_npu)
    dist_backend: str = "gloo"
    visible_devices_env: str | None = None
    install_hint: str = ""  # what to do when the backend is missing
    is_accelerator: bool = True

    # -- availability -----------------------------------------------------------------------

    def _import_plugin(self) -> str | None:
        """Import the plug-in; return why it failed, or None."""
        if self.plugin is None:
            return None
        try:
            importlib.import_module(self.plugin)
        except Exception as err:  # a broken vendor install raises anything, not only ImportError
            if isinstance(err, ModuleNotFoundError) and err.name == self.plugin:
                return f"{self.plugin} is not installed"
            return f"{self.plugin} failed to import ({type(err).__name__}: {err})"
        return None

    def module(self) -> ModuleType | None:
        """The backend's torch namespace (torch.cuda, torch.mlu, ...), or None."""
        if self._import_plugin() is not None:
            return None
        return getattr(torch, self.name, None)

    def unavailable_reason(self) -> str | None:
        """None when usable, else one line saying what is missing."""
        missing = self._import_plugin()
        if missing:
            return missing
        mod = getattr(torch, self.name, None)
        if mod is None or not hasattr(mod, "is_available"):
            return f"this torch build ({torch.__version__}) has no '{self.name}' backend"
        if not mod.is_available() or self.device_count() == 0:
            return f"no {self.name} device is visible{self._visible_hint()}"
        return None

    def _visible_hint(self) -> str:
        value = os.environ.get(self.visible_devices_env or "")
        return f" ({self.visible_devices_env}={value!r})" if value is not None else ""

    def is_available(self) -> bool:
        return self.unavailable_reason() is None

    def require(self) -> None:
        reason = self.unavailable_reason()
        if reason:
            hint = f"; {self.install_hint}" if self.install_hint else ""
            raise DeviceError(f"device '{self.name}' requested but {reason}{hint}")

    def plugin_version(self) -> str | None:
        if self.plugin is None or self._import_plugin() is not None:
            return None
        return getattr(importlib.import_module(self.plugin), "__version__", "unknown")

    # -- cards ------------------------------------------------------------------------------

    def device_count(self) -> int:
        mod = self.module()
        return int(mod.device_count()) if mod is not None and mod.is_available() else 0

    def card_name(self, index: int) -> str:
        return str(self.module().get_device_name(index))

    def card_memory_mb(self, index: int) -> float | None:
        props = self.module().get_device_properties(index)
        total = getattr(props, "total_memory", None)
        return total / 2**20 if total else None

    def cards(self) -> list[CardInfo]:
        return [
            CardInfo(i, self.card_name(i), self.card_memory_mb(i))
            for i in range(self.device_count())
        ]

    def torch_device(self, index: int | None = None) -> torch.device:
        return torch.device(self.name if index is None else f"{self.name}:{index}")

    def set_device(self, index: int) -> None:
        self.module().set_device(index)

    def _uses_torch_accelerator(self) -> bool:
        # torch.accelerator covers the current accelerator generically; prefer it when it is ours.
        acc = getattr(torch, "accelerator", None)
        current = acc.current_accelerator() if acc is not None and acc.is_available() else None
        return current is not None and current.type == self.name

    def synchronize(self, index: int | None = None) -> None:
        if self._uses_torch_accelerator():
            torch.accelerator.synchronize(index)
        else:
            self.module().synchronize(index)

    # -- memory -----------------------------------------------------------------------------

    def reset_peak_memory(self, index: int | None = None) -> None:
        if self._uses_torch_accelerator():
            torch.accelerator.reset_peak_memory_stats(index)
        else:
            self.module().reset_peak_memory_stats(index)

    def peak_memory_mb(self, index: int | None = None) -> float | None:
        """Peak memory allocated by tensors since the last reset."""
        if self._uses_torch_accelerator():
            return torch.accelerator.max_memory_allocated(index) / 2**20
        return self.module().max_memory_allocated(index) / 2**20

    # -- randomness -------------------------------------------------------------------------

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)
        mod = self.module()
        if mod is not None and hasattr(mod, "manual_seed_all"):
            mod.manual_seed_all(seed)

    def rng_state(self, index: int | None = None) -> torch.Tensor | None:
        """The card's generator state, to save beside the CPU ones for an exact resume."""
        return self.module().get_rng_state(index if index is not None else 0)

    def set_rng_state(self, state: torch.Tensor, index: int | None = None) -> None:
        self.module().set_rng_state(state, index if index is not None else 0)

    # -- precision --------------------------------------------------------------------------

    def supported_precisions(self) -> tuple[str, ...]:
        supported = ["fp32", "fp16"]
        if self.supports_bf16():
            supported.append("bf16")
        return tuple(p for p in PRECISIONS if p in supported)

    def supports_bf16(self) -> bool:
        mod = self.module()
        check = getattr(mod, "is_bf16_supported", None)
        return bool(check()) if check is not None else True

    def check_precision(self, precision: str) -> None:
        if precision not in PRECISIONS:
            raise DeviceError(
                f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}"
            )
        if precision not in self.supported_precisions():
            raise DeviceError(
                f"precision '{precision}' is not supported on {self.name}; this device supports "
                f"{', '.join(self.supported_precisions())}"
            )

    def configure_precision(self, precision: str) -> None:
        """Set global math modes for a run (e.g. TF32 on or off). Call once, before work."""
        self.check_precision(precision)

    def autocast(self, precision: str) -> contextlib.AbstractContextManager:
        """Autocast for fp16/bf16; a no-op for fp32/tf32 (their mode is set by configure)."""
        dtype = AUTOCAST_DTYPES.get(precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.name, dtype=dtype)

    def grad_scaler(self, precision: str) -> torch.amp.GradScaler:
        """Dynamic loss scaling for fp16; a disabled (pass-through) scaler otherwise."""
        return torch.amp.GradScaler(self.name, enabled=precision == "fp16")

    # -- kernels ----------------------------------------------------------------------------

    def preflight(self, index: int = 0) -> dict[str, str]:
        """Run tiny detection ops on the card and say which kernel each op will use."""
        from rcnn.layers import preflight

        return preflight(self.torch_device(index))

    # -- description ------------------------------------------------------------------------

    def environment(self) -> dict[str, str | None]:
        """Versions that identify this backend's software stack, for the run record."""
        return {"plugin": self.plugin, "plugin_version": self.plugin_version(), "driver": None}
