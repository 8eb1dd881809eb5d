"""Choose, once per op and device, between the device's kernel and the native (pure torch) op.

The kernel is whatever `torchvision.ops` runs on the device: torchvision's own C++/CUDA kernels
or one a vendor plug-in registers under the torchvision ops. It is used when torchvision imports
and a tiny preflight call on the device runs and agrees with the native op; otherwise the native
op runs, once a preflight shows that it runs there too. Where neither runs (a plug-in without
sort, say) the op is "unusable" and a model that calls it stops with one line naming the missing
operator. Capability is discovered by running, never by the device's name. Speed is the device
adapter's word: an op in its `native_ops` (measured faster natively) runs natively in auto mode.

`RCNN_OPS=auto|kernel|native` (default auto) forces the choice; a forced kernel that cannot run
raises KernelUnavailableError naming the op, the device and why.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import torch

from rcnn.config.loader import ConfigError
from rcnn.device.reasons import missing_operator, reason

from . import native
from .precision import autocast_off
from .preflight_cases import CASES

ENV = "RCNN_OPS"
MODES = ("auto", "kernel", "native")
OPS = ("nms", "roi_align", "roi_pool")
# Functions that ride on another op's decision: torchvision's batched_nms is built on its nms.
_DECIDED_BY = {"nms": "nms", "batched_nms": "nms", "roi_align": "roi_align", "roi_pool": "roi_pool"}


class KernelUnavailableError(RuntimeError):
    """RCNN_OPS=kernel was asked for, but the op's kernel cannot run on the device; or neither
    the kernel nor the native op runs there."""


@dataclass(frozen=True)
class Choice:
    impl: str  # "kernel", "native" or "unusable" (neither runs on the device)
    reason: str

    def describe(self) -> str:
        """`kernel`, `native`, or `unusable: aten::sort.values_stable missing`."""
        return f"unusable: {self.reason}" if self.impl == "unusable" else self.impl


_choices: dict[tuple[str, str, int | None, str], Choice] = {}
_used: dict[str, set[str]] = {}


def load_kernels() -> ModuleType:
    """torchvision.ops, imported only when needed: on some machines torchvision cannot import."""
    import torchvision.ops

    return torchvision.ops


def mode() -> str:
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ConfigError(f"environment: {ENV}={value!r} is not one of {', '.join(MODES)}")
    return value


def check_kernel(op: str, device: torch.device) -> tuple[bool, str]:
    """(usable, why): whether the op's kernel runs on `device` and agrees with the native op."""
    try:
        kernels = load_kernels()
    except Exception as err:  # a broken torchvision install raises anything, not only ImportError
        return False, f"torchvision.ops failed to import ({type(err).__name__}: {err})"
    case = CASES[op]
    # The first op may run under no_grad, inference_mode or autocast; the check needs none.
    with torch.inference_mode(False), torch.enable_grad(), autocast_off(device):
        try:
            got = case.run(getattr(kernels, op), device)
        except Exception as err:
            return False, f"the kernel failed on a tiny input ({reason(err)})"
        try:
            want = case.run(getattr(native, op), device)
        except Exception as err:
            # Nothing to check against; the kernel is the only way to run the op here.
            return True, f"kernel ran; native op cannot run here ({reason(err)})"
    problem = case.compare(got, want)
    return (False, problem) if problem else (True, "preflight passed")


def check_native(op: str, device: torch.device) -> str | None:
    """What the device lacks to run the native op on a tiny input, in one line
    (`aten::sort.values_stable missing`); None when nothing is missing. Only a missing kernel
    (NotImplementedError) makes it unusable: another failure of the tiny case is no proof."""
    with torch.inference_mode(False), torch.enable_grad(), autocast_off(device):
        try:
            CASES[op].run(getattr(native, op), device)
        except NotImplementedError as err:
            missing = missing_operator(err)
            return f"{missing} missing" if missing else reason(err)
        except Exception:  # e.g. a test device's autograd on a second card: the run will say
            return None
    return None


def choose(op: str, device: torch.device) -> Choice:
    """The implementation `op` uses on `device` (cached per op, device and RCNN_OPS mode)."""
    forced = mode()
    key = (op, device.type, device.index, forced)
    if key in _choices:
        return _choices[key]
    if forced == "native":
        missing = check_native(op, device)
        choice = Choice("unusable", missing) if missing else Choice("native", f"{ENV}=native")
    else:
        usable, why = check_kernel(op, device)
        if not usable and forced == "kernel":
            raise KernelUnavailableError(
                f"{ENV}=kernel, but {op} has no working kernel on {device}: {why}. "
                f"Unset {ENV} (or set {ENV}=native) to run the native op"
            )
        faster_natively = forced == "auto" and op in _faster_natively(device)
        if usable and faster_natively and check_native(op, device) is None:
            # The adapter measured the native op faster here: the kernel stays a forced choice.
            usable, why = False, f"kernel ok, native faster on {device.type} ({ENV}=kernel: kernel)"
        missing = None if usable else check_native(op, device)
        if missing is not None:  # the kernel's own failure is `benchmark ops`' to show
            choice = Choice("unusable", missing)
        else:
            choice = Choice("kernel" if usable else "native", why)
    _choices[key] = choice
    return choice


def _faster_natively(device: torch.device) -> frozenset[str]:
    """The ops the device's adapter measured faster natively (none for an unknown device)."""
    from rcnn.device.registry import get_adapter

    try:
        return get_adapter(device.type).native_ops
    except Exception:  # a device without an adapter here still runs its ops
        return frozenset()


def implementation(name: str, device: torch.device) -> Callable:
    """The function to call for `name` on `device`; records the choice for kernels_used()."""
    op = _DECIDED_BY[name]
    choice = choose(op, device)
    if choice.impl == "unusable":
        raise KernelUnavailableError(
            f"{name} cannot run on {device}: {choice.reason} "
            "(neither the device's kernel nor the native op runs there)"
        )
    _used.setdefault(op, set()).add(choice.impl)
    kernel = getattr(load_kernels() if choice.impl == "kernel" else native, name)
    return functools.partial(_labelled, f"rcnn::{name}", kernel)


def _labelled(label: str, fn: Callable, *args, **kwargs):
    """`fn` under a profiler label: `benchmark profile` finds a native op's many small ops."""
    with torch.profiler.record_function(label):
        return fn(*args, **kwargs)


def _canonical(device: torch.device | str) -> torch.device:
    # "cuda" and "cuda:0" are one card: let torch fill in the index it would use.
    return torch.empty(0, device=device).device


def preflight(device: torch.device | str) -> dict[str, str]:
    """Run each op on a tiny input on `device`; return {op: "kernel" | "native" |
    "unusable: <operator> missing"}."""
    device = _canonical(device)
    return {op: choose(op, device).describe() for op in OPS}


def preflight_reasons(device: torch.device | str) -> dict[str, str]:
    """Like preflight, with why: {op: "kernel (preflight passed)" | "native (<why>)" | ...}."""
    device = _canonical(device)
    return {op: f"{c.impl} ({c.reason})" for op, c in ((op, choose(op, device)) for op in OPS)}


def kernels_used() -> dict[str, str]:
    """{op: "kernel" | "native"} for the ops that ran ("kernel+native" if both did)."""
    return {op: "+".join(sorted(impls)) for op, impls in sorted(_used.items())}


def reset() -> None:
    """Forget the choices and the usage record (a new run, or a changed RCNN_OPS in tests)."""
    _choices.clear()
    _used.clear()
