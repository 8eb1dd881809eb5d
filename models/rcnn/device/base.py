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
from importlib import metadata
from types import ModuleType
from typing import Any, TypeVar

import torch

from rcnn import compat

from .errors import DeviceError
from .reasons import reason

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
# what a plug-in raises for a capability it lacks (a missing attribute, an unimplemented call)
MISSING_CAPABILITY = (AttributeError, NotImplementedError, RuntimeError, TypeError)

T = TypeVar("T")
Source = tuple[str, "Callable[[], Any] | None"]  # (what it is, for the note; the call or None)
logger = logging.getLogger("rcnn.device")


@dataclass(frozen=True)
class CardInfo:
    index: int
    name: str | None
    memory_mb: float | None


class DeviceAdapter:
    """One backend: subclasses set the attributes and override only where the backend differs.

    Every capability a plug-in may lack is read through one fallback chain (`_first`): the
    backend's own module, then torch.accelerator where this torch has it and the device is its
    current accelerator, then a null answer with a note; never a crash.
    """

    name: str = ""
    plugin: str | None = None  # module to import first (torch_mlu, torch_npu)
    dist_backend: str = "gloo"
    visible_devices_env: str | None = None
    install_hint: str = ""  # what to do when the backend is missing
    is_accelerator: bool = True
    # what peak_memory_mb measures, for the record: tensors the caching allocator handed out
    peak_memory_kind: str = "allocated_tensors"
    compile_backend: str | None = None  # the torch.compile backend that generates its code
    # The input shapes it wants a compiled backbone to see: "static" (one graph per shape
    # bucket, warmed before the window; what vendor graph compilers such as MLU's and NPU's
    # need) or "dynamic" (torch.compile dynamic=True). MODEL.COMPILE_SHAPES overrides it.
    compile_shapes: str = "static"
    # Detection ops whose native (plain torch) version `benchmark ops` measured faster than the
    # device's kernel: RCNN_OPS=auto runs them natively here, RCNN_OPS=kernel still forces it.
    native_ops: frozenset[str] = frozenset()
    # Modes (train, infer) whose backbone runs fastest in channels-last on this backend: the
    # layout train, infer and sweep use when --channels-last is not given.
    channels_last_modes: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self._notes: list[str] = []  # what the backend lacked, said once per process
        self._probed: dict[str, str | None] = {}  # precision -> why autocast failed on the card
        self.card: int | None = None  # the card set_device bound this process to

    # -- capabilities a plug-in may lack ----------------------------------------------------

    def note(self, text: str) -> None:
        """Say once, in the log and in every later record of this process, what was missing."""
        if text not in self._notes:
            self._notes.append(text)
            logger.warning("%s", text)

    def notes(self) -> list[str]:
        """What this backend lacked so far in this process (for the record's `notes`)."""
        return list(self._notes)

    def _optional(self, capability: str, call: Callable[[], T], default: T) -> T:
        """`call()`, or `default` with a note when the backend lacks the capability."""
        try:
            return call()
        except MISSING_CAPABILITY as err:
            self.note(f"{self.name}: no {capability} ({reason(err)}); left null")
            return default

    def _accelerator(self, function: str) -> Callable[..., Any] | None:
        """torch.accelerator's `function` when the accelerator is this device, else None."""
        if compat.current_accelerator_type() != self.name:
            return None
        return compat.accelerator_function(function)

    def _first(self, capability: str, sources: list[Source], default: T) -> T:
        """The first source that answers; else `default`, with one note naming each miss."""
        missed = []
        for where, call in sources:
            if call is None:
                missed.append(f"no {where}")
                continue
            try:
                return call()
            except MISSING_CAPABILITY as err:
                missed.append(f"{where}: {reason(err)}")
        self.note(f"{self.name}: no {capability} ({'; '.join(missed)}); left null")
        return default

    def _module_call(self, function: str, *args: Any) -> Source:
        """`<module>.function(*args)` as a source (its call None when the module lacks it)."""
        fn = getattr(self.module(), function, None)
        return f"torch.{self.name}.{function}", (None if fn is None else lambda: fn(*args))

    def _accelerator_call(self, function: str, *args: Any) -> Source:
        """torch.accelerator.function(*args) as a source, where it serves this device."""
        fn = self._accelerator(function)
        return f"torch.accelerator.{function}", (None if fn is None else lambda: fn(*args))

    def can_sync_via_accelerator(self) -> bool:
        """Whether torch.accelerator synchronizes this device (torch >= 2.6, current device)."""
        return self._accelerator("synchronize") is not None

    def memory_stats(self) -> bool:
        """Whether peak memory can be measured here (the module's statistics or
        torch.accelerator's), found by asking: torch.accelerator's functions exist for every
        device, yet fail for one whose plug-in registered no allocator with torch."""
        return self.peak_memory_mb() is not None

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
            return f"{self.plugin} failed to import ({reason(err)})"
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
        """The plug-in's version: its module's __version__, else its package's metadata."""
        if self.plugin is None or self._import_plugin() is not None:
            return None
        version = getattr(importlib.import_module(self.plugin), "__version__", None)
        if version is not None:
            return str(version)
        top = self.plugin.split(".")[0]
        for dist in [top, *metadata.packages_distributions().get(top, [])]:
            with contextlib.suppress(metadata.PackageNotFoundError):
                return metadata.version(dist)
        return "unknown"

    # -- cards ------------------------------------------------------------------------------

    def device_count(self) -> int:
        mod = self.module()
        return int(mod.device_count()) if mod is not None and mod.is_available() else 0

    def _property(self, index: int, field: str) -> Source:
        """A field of `<module>.get_device_properties(index)` as a source."""
        where, call = self._module_call("get_device_properties", index)
        return f"{where}().{field}", (None if call is None else lambda: getattr(call(), field))

    def card_name(self, index: int) -> str | None:
        sources = [self._module_call("get_device_name", index), self._property(index, "name")]
        name = self._first("card name", sources, None)
        return str(name) if name is not None else None

    def card_memory_mb(self, index: int) -> float | None:
        where, free_total = self._accelerator_call("get_memory_info", index)
        sources = [
            self._property(index, "total_memory"),
            (where, None if free_total is None else lambda: free_total()[1]),
        ]
        total = self._first("card memory", sources, None)
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
        """Bind this process to card `index`: later probes run there, never on another card."""
        sources = [
            self._module_call("set_device", index),
            self._accelerator_call("set_device_index", index),
        ]
        self._first("set_device (the card stays the backend's default)", sources, None)
        self.card = index

    def synchronize(self, index: int | None = None) -> None:
        self._first(
            "synchronize (timings are not bracketed by a device sync)",
            [
                self._module_call("synchronize", index),
                self._accelerator_call("synchronize", index),
            ],
            None,
        )

    # -- memory -----------------------------------------------------------------------------

    def reset_peak_memory(self, index: int | None = None) -> None:
        self._first(
            "memory statistics",
            [
                self._module_call("reset_peak_memory_stats", index),
                self._accelerator_call("reset_peak_memory_stats", index),
            ],
            None,
        )

    def peak_memory_mb(self, index: int | None = None) -> float | None:
        """Peak memory allocated by tensors since the last reset; None when not reported."""
        peak = self._first(
            "memory statistics",
            [
                self._module_call("max_memory_allocated", index),
                self._accelerator_call("max_memory_allocated", index),
            ],
            None,
        )
        return peak / 2**20 if peak is not None else None

    def supports_pinned_memory(self) -> bool:
        """Whether page-locked host memory works here, so a batch's copy to the card can be
        asynchronous (the host prepares the next batch while the card computes). Decided by
        trying: a vendor that renames PrivateUse1 (torch_npu, torch_mlu) pins like CUDA does."""
        if not self.is_accelerator:
            return False
        if (
            compat.pin_memory_pins_for_the_accelerator()
            and compat.current_accelerator_type() != self.name
        ):
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
        card = known.get(self.name) or (
            "PrivateUse1" if self.name == compat.privateuse1_name() else None
        )
        activity = getattr(torch.profiler.ProfilerActivity, card or "", None)
        if activity is not None and activity in torch.profiler.supported_activities():
            activities.append(activity)
        return activities

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)
        if not self.is_accelerator:  # the host's generator is the only one: seeded above
            return
        self._first(
            "card RNG seeding",
            [self._module_call("manual_seed_all", seed), self._module_call("manual_seed", seed)],
            None,
        )

    def rng_state(self, index: int | None = None) -> torch.Tensor | None:
        """The card's generator state, to save beside the CPU ones for an exact resume;
        None (and a note: a resume is then not bit-exact) when the backend has none."""
        card = index if index is not None else 0
        return self._first("RNG state", [self._module_call("get_rng_state", card)], None)

    def set_rng_state(self, state: torch.Tensor | None, index: int | None = None) -> None:
        if state is None:
            return  # saved by a backend without RNG state
        card = index if index is not None else 0
        self._first("RNG state", [self._module_call("set_rng_state", state, card)], None)

    # -- precision --------------------------------------------------------------------------

    def supported_precisions(self) -> tuple[str, ...]:
        """What the backend claims (autocast, its dtypes, its bf16 answer); once set_device
        bound a card, each autocast precision also proven on that card. Before it (a
        launcher's parent) no card is touched."""
        supported = ["fp32"]
        for precision in ("fp16", "bf16"):
            if self._claims(precision) and (self.card is None or self.autocast_works(precision)):
                supported.append(precision)
        return tuple(p for p in PRECISIONS if p in supported)

    def _claims(self, precision: str) -> bool:
        """Whether the backend says it can autocast to `precision`, without touching a card."""
        error = compat.autocast_error(self.name)
        if error is not None:
            self.note(f"{self.name}: no torch autocast ({reason(error)}); {precision} refused")
            self._probed[precision] = f"no torch autocast: {reason(error)}"
            return False
        _, dtypes = self._module_call("get_amp_supported_dtype")  # plug-ins have it, CUDA not
        if dtypes is not None and AUTOCAST_DTYPES[precision] not in dtypes():
            self._probed[precision] = f"the device's autocast offers no {precision}"
            return False
        # an unknown bf16 answer (None) is allowed: the run checks the dtype convs ran in
        return precision != "bf16" or self.supports_bf16() is not False

    def supports_bf16(self) -> bool | None:
        """The backend's own answer; None (with a note) when it has no bf16 query."""
        answer = self._first("bf16 query", [self._module_call("is_bf16_supported")], None)
        return bool(answer) if answer is not None else None

    def autocast_works(self, precision: str) -> bool:
        """Whether torch's autocast really covers this backend at `precision`, tried once per
        process with a tiny convolution on this process's own card (set_device's): where it
        does not, torch warns (or says nothing) and runs fp32 work under an fp16/bf16 label."""
        if precision not in self._probed:
            why = self._autocast_failure(AUTOCAST_DTYPES[precision])
            if why is not None:
                self.note(f"{self.name}: {why}; {precision} refused")
            self._probed[precision] = why
        return self._probed[precision] is None

    def _autocast_failure(self, dtype: torch.dtype) -> str | None:
        card = self.torch_device(self.card if self.card is not None else 0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's "disabling autocast": the dtype says it
                x = torch.ones(1, 1, 2, 2, device=card)
                weight = torch.ones(1, 1, 1, 1, device=card)
                with torch.autocast(device_type=self.name, dtype=dtype):
                    out = torch.nn.functional.conv2d(x, weight)
        except Exception as err:  # a plug-in fails in any way
            return f"a convolution under torch autocast failed ({reason(err)})"
        if out.dtype != dtype:
            return f"torch autocast left a convolution in {str(out.dtype).removeprefix('torch.')}"
        return None

    def check_precision(self, precision: str) -> None:
        if precision not in PRECISIONS:
            raise DeviceError(
                f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}"
            )
        if precision not in self.supported_precisions():
            why = self._probed.get(precision)
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
        enabled = precision == "fp16"
        scaler = compat.grad_scaler(self.name, enabled)
        if scaler is not None:
            return scaler
        # torch < 2.3: the backend's own amp.GradScaler (torch.cuda's, a plug-in's); a disabled
        # scaler only passes calls through, so torch.cuda's serves any device
        own = getattr(getattr(self.module(), "amp", None), "GradScaler", None)
        if own is None and not enabled:
            own = torch.cuda.amp.GradScaler
        if own is None:
            raise DeviceError(
                f"fp16 loss scaling on {self.name} needs torch >= 2.3 (torch.amp.GradScaler) "
                f"or a plug-in with its own amp.GradScaler; this torch is {torch.__version__}: "
                "use bf16 or fp32"
            )
        return own(enabled=enabled)

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
