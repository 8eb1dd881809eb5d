"""The device adapter: everything the project needs to know about one backend.

A backend whose PyTorch namespace mirrors `torch.cuda` (cuda, mlu, npu, xpu, and most vendor
plug-ins) needs only a subclass that sets the class attributes below; the rest is generic.
Nothing outside `rcnn.device` asks which device it runs on: it asks the adapter.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TypeVar

import torch

from . import compat

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
# what a plug-in raises for a capability it lacks (a missing attribute, an unimplemented call)
MISSING_CAPABILITY = (AttributeError, NotImplementedError, RuntimeError, TypeError)

T = TypeVar("T")
logger = logging.getLogger("rcnn.device")


def privateuse1_name() -> str | None:
    """The name an out-of-tree (PrivateUse1) plug-in gave its device, once it renamed it."""
    name = getattr(torch._C, "_get_privateuse1_backend_name", lambda: "privateuseone")()
    return None if name == "privateuseone" else name


class DeviceError(RuntimeError):
    """A device, card or precision was asked for that this machine cannot give."""


@dataclass(frozen=True)
class CardInfo:
    index: int
    name: str | None
    memory_mb: float | None


class DeviceAdapter:
    """One backend: subclasses set the attributes and override only where the backend differs."""

    name: str = ""
    plugin: str | None = None  # module to import first (torch_mlu, torch_npu)
    dist_backend: str = "gloo"
    visible_devices_env: str | None = None
    install_hint: str = ""  # what to do when the backend is missing
    is_accelerator: bool = True
    # what peak_memory_mb measures, for the record: tensors the caching allocator handed out
    peak_memory_kind: str = "allocated_tensors"
    compile_backend: str | None = None  # the torch.compile backend that generates its code
    # Detection ops whose native (plain torch) version `benchmark ops` measured faster than the
    # device's kernel: RCNN_OPS=auto runs them natively here, RCNN_OPS=kernel still forces it.
    native_ops: frozenset[str] = frozenset()

    # -- capabilities a plug-in may lack ----------------------------------------------------

    def note(self, text: str) -> None:
        """Say once, in the log and in every later record of this process, what was missing."""
        notes = self.__dict__.setdefault("_notes", [])
        if text not in notes:
            notes.append(text)
            logger.warning("%s", text)

    def notes(self) -> list[str]:
        """What this backend lacked so far in this process (for the record's `notes`)."""
        return list(self.__dict__.get("_notes", []))

    def _optional(self, capability: str, call: Callable[[], T], default: T) -> T:
        """`call()`, or `default` with a note when the backend lacks the capability."""
        try:
            return call()
        except MISSING_CAPABILITY as err:
            self.note(f"{self.name}: no {capability} ({type(err).__name__}: {err}); left null")
            return default

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

    def card_name(self, index: int) -> str | None:
        return self._optional("card name", lambda: str(self.module().get_device_name(index)), None)

    def card_memory_mb(self, index: int) -> float | None:
        props = self._optional(
            "card properties", lambda: self.module().get_device_properties(index), None
        )
        total = getattr(props, "total_memory", None)
        return total / 2**20 if total else None

    # words of a card name -> dense peak TFLOP/s per precision; empty where no datasheet is known
    PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = ()

    def peak_tflops(self, index: int, precision: str) -> float | None:
        """One card's dense peak TFLOP/s at `precision`, from PEAK_TFLOPS by card name (the
        first entry whose words appear whole in the card's name wins: "A100" names the
        A100-SXM4-80GB, not the RTX A1000); None when the card is not listed."""
        name = self.card_name(index) or ""
        for part, peaks in self.PEAK_TFLOPS:
            if re.search(rf"(?<![A-Za-z0-9]){re.escape(part)}(?![A-Za-z0-9])", name):
                return peaks.get(precision)
        return None

    def cards(self) -> list[CardInfo]:
        return [
            CardInfo(i, self.card_name(i), self.card_memory_mb(i))
            for i in range(self.device_count())
        ]

    def torch_device(self, index: int | None = None) -> torch.device:
        return torch.device(self.name if index is None else f"{self.name}:{index}")

    def set_device(self, index: int) -> None:
        self.module().set_device(index)

    def _uses_torch_accelerator(self, function: str = "synchronize") -> bool:
        # torch.accelerator covers the current accelerator generically; prefer it when it is ours
        # and this torch has the function (the module is from torch 2.6, its memory ones 2.9).
        # A PrivateUse1 plug-in's own module is what a Python-only plug-in drives: ask it.
        return (
            compat.current_accelerator_type() == self.name != privateuse1_name()
            and compat.accelerator_function(function) is not None
        )

    def synchronize(self, index: int | None = None) -> None:
        if self._uses_torch_accelerator():
            torch.accelerator.synchronize(index)
        else:
            self.module().synchronize(index)

    # -- memory -----------------------------------------------------------------------------

    def reset_peak_memory(self, index: int | None = None) -> None:
        def reset() -> None:
            if self._uses_torch_accelerator("reset_peak_memory_stats"):
                torch.accelerator.reset_peak_memory_stats(index)
            else:
                self.module().reset_peak_memory_stats(index)

        self._optional("memory statistics", reset, None)

    def peak_memory_mb(self, index: int | None = None) -> float | None:
        """Peak memory allocated by tensors since the last reset; None when not reported."""

        def peak() -> float:
            if self._uses_torch_accelerator("max_memory_allocated"):
                return torch.accelerator.max_memory_allocated(index) / 2**20
            return self.module().max_memory_allocated(index) / 2**20

        return self._optional("memory statistics", peak, None)

    def supports_pinned_memory(self) -> bool:
        """Whether page-locked host memory works here, so a batch's copy to the card can be
        asynchronous (the host prepares the next batch while the card computes)."""
        acc = getattr(torch, "accelerator", None)
        if not self.is_accelerator or (acc is not None and not self._uses_torch_accelerator()):
            return False  # pin_memory() pins for the current accelerator: it must be this one
        return self._optional(
            "pinned host memory", lambda: torch.empty(1).pin_memory().is_pinned(), False
        )

    # -- randomness -------------------------------------------------------------------------

    def profiler_activities(self) -> list[torch.profiler.ProfilerActivity]:
        """torch.profiler activities that see this backend's work: the host always, and the
        card's own where this torch's profiler supports it (CUDA, XPU, a renamed PrivateUse1
        plug-in's); none is claimed for a card the profiler cannot see."""
        activities = [torch.profiler.ProfilerActivity.CPU]
        if not self.is_accelerator:
            return activities
        known = {"cuda": "CUDA", "xpu": "XPU"}
        card = known.get(self.name) or ("PrivateUse1" if self.name == privateuse1_name() else None)
        activity = getattr(torch.profiler.ProfilerActivity, card or "", None)
        if activity is not None and activity in torch.profiler.supported_activities():
            activities.append(activity)
        return activities

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)
        mod = self.module()
        if mod is not None and hasattr(mod, "manual_seed_all"):
            mod.manual_seed_all(seed)

    def rng_state(self, index: int | None = None) -> torch.Tensor | None:
        """The card's generator state, to save beside the CPU ones for an exact resume;
        None (and a note: a resume is then not bit-exact) when the backend has none."""
        card = index if index is not None else 0
        return self._optional("RNG state", lambda: self.module().get_rng_state(card), None)

    def set_rng_state(self, state: torch.Tensor | None, index: int | None = None) -> None:
        if state is None:
            return  # saved by a backend without RNG state
        card = index if index is not None else 0
        self._optional("RNG state", lambda: self.module().set_rng_state(state, card), None)

    # -- precision --------------------------------------------------------------------------

    def supported_precisions(self) -> tuple[str, ...]:
        supported = ["fp32"]
        if self.autocast_works("fp16"):
            supported.append("fp16")
        # an unknown bf16 answer (None) is allowed: the run checks the dtype convs ran in
        if self.supports_bf16() is not False and self.autocast_works("bf16"):
            supported.append("bf16")
        return tuple(p for p in PRECISIONS if p in supported)

    def supports_bf16(self) -> bool | None:
        """The backend's own answer; None (with a note) when it has no bf16 query."""
        return self._optional("bf16 query", lambda: bool(self.module().is_bf16_supported()), None)

    def autocast_works(self, precision: str) -> bool:
        """Whether torch's autocast really covers this backend at `precision`, tried once per
        process with a tiny convolution on card 0: where it does not, torch warns (or says
        nothing) and runs fp32 work under an fp16/bf16 label."""
        tried = self.__dict__.setdefault("_autocast", {})
        if precision not in tried:
            why = self._autocast_failure(AUTOCAST_DTYPES[precision])
            if why is not None:
                self.__dict__.setdefault("_refused", {})[precision] = why
                self.note(f"{self.name}: {why}; {precision} refused")
            tried[precision] = why is None
        return tried[precision]

    def _autocast_failure(self, dtype: torch.dtype) -> str | None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's "disabling autocast": the dtype says it
                x = torch.ones(1, 1, 2, 2, device=self.torch_device(0))
                weight = torch.ones(1, 1, 1, 1, device=self.torch_device(0))
                with torch.autocast(device_type=self.name, dtype=dtype):
                    out = torch.nn.functional.conv2d(x, weight)
        except Exception as err:  # a plug-in fails in any way
            said = (str(err).splitlines() or [""])[0][:160]
            return f"a convolution under torch autocast failed ({type(err).__name__}: {said})"
        if out.dtype != dtype:
            return f"torch autocast left a convolution in {str(out.dtype).removeprefix('torch.')}"
        return None

    def check_precision(self, precision: str) -> None:
        if precision not in PRECISIONS:
            raise DeviceError(
                f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}"
            )
        if precision not in self.supported_precisions():
            why = self.__dict__.get("_refused", {}).get(precision)
            raise DeviceError(
                f"precision '{precision}' is not supported on {self.name}"
                + (f" ({why})" if why else "")
                + f"; this device supports {', '.join(self.supported_precisions())}"
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
        return compat.grad_scaler(self.name, precision == "fp16", self.module())

    # -- graph compilation ------------------------------------------------------------------

    def supports_compile(self) -> tuple[bool, str]:
        """(True, backend name) when torch.compile can build code for this device, else
        (False, why not)."""
        reason = compat.compile_unavailable_reason()
        if reason is not None:
            return False, reason
        if self.compile_backend is not None:
            return True, self.compile_backend
        # A vendor plug-in registers its backend under the device's name.
        dynamo = importlib.import_module("torch._dynamo")
        if self.name in dynamo.list_backends(exclude_tags=()):
            return True, self.name
        owner = self.plugin or "torch"
        return False, f"no torch.compile backend for {self.name}: {owner} registers none"

    # -- description ------------------------------------------------------------------------

    def environment(self) -> dict[str, str | None]:
        """Versions that identify this backend's software stack, for the run record."""
        return {"plugin": self.plugin, "plugin_version": self.plugin_version(), "driver": None}
