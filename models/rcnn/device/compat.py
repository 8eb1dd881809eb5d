"""What the installed torch can do: the one place that tests torch features by version or hasattr.

The project runs on torch 2.1 through the pinned 2.14.1 (the torch that vendor images ship).
Each helper below names the release that brought the feature it stands in for; older releases
get the equivalent they had, or a clear error where they had none.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch
import torch.distributed as dist

MIN_TORCH = (2, 1)
MIN_PYTHON = (3, 10)


def torch_version() -> tuple[int, int]:
    """(major, minor) of the installed torch; vendor builds append local tags (2.1.0a0+git...)."""
    match = re.match(r"(\d+)\.(\d+)", str(torch.__version__))
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def unsupported_reason() -> str | None:
    """Why this interpreter or torch is below the supported floor, or None when it is not."""
    if sys.version_info[:2] < MIN_PYTHON:
        found = ".".join(map(str, sys.version_info[:3]))
        return f"rcnn-bench needs Python >= 3.10; {sys.executable} is {found}"
    if torch_version() < MIN_TORCH:
        return (
            f"rcnn-bench needs torch >= 2.1 (supported: 2.1 to 2.14); found torch "
            f"{torch.__version__} at {torch.__file__}: use an image or venv with a newer torch"
        )
    return None


def require_supported_torch() -> None:
    """Stop with one line (no traceback) when the interpreter or torch is below the floor."""
    reason = unsupported_reason()
    if reason is not None:
        raise SystemExit(f"error: {reason}")


def compile_unavailable_reason() -> str | None:
    """Why torch.compile cannot run here, or None: nn.Module.compile (torch 2.2; it compiles in
    place, so state-dict names stay) and TorchDynamo's support of this Python."""
    if not hasattr(torch.nn.Module, "compile"):
        return f"torch {torch.__version__} has no nn.Module.compile (torch 2.2)"
    dynamo = importlib.import_module("torch._dynamo")
    supported = getattr(dynamo, "is_dynamo_supported", None)
    if supported is not None and not supported():
        python = ".".join(map(str, sys.version_info[:2]))
        return f"TorchDynamo in torch {torch.__version__} does not support Python {python}"
    return None


@functools.cache
def autocast_available(device_type: str) -> bool:
    """torch.amp.is_autocast_available (torch 2.4); before it, whether torch.autocast accepts
    the device type (2.1-2.3 raise RuntimeError for a type without autocast)."""
    check = getattr(torch.amp, "is_autocast_available", None)
    if check is not None:
        return bool(check(device_type))
    try:
        torch.autocast(device_type=device_type, enabled=False)
    except RuntimeError:
        return False
    return True


def grad_scaler(device_type: str, enabled: bool, module: ModuleType | None = None) -> Any:
    """A GradScaler for `device_type`: torch.amp.GradScaler(device) (torch 2.3); before it,
    torch.cuda.amp.GradScaler for cuda or a disabled (pass-through) scaler, and the plug-in's
    own `<module>.amp.GradScaler` (torch_npu, torch_mlu) for a vendor device."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device_type, enabled=enabled)
    if device_type == "cuda" or not enabled:
        # with enabled=False it only passes calls through, whatever the device
        return torch.cuda.amp.GradScaler(enabled=enabled)
    plugin_scaler = getattr(getattr(module, "amp", None), "GradScaler", None)
    if plugin_scaler is not None:
        return plugin_scaler(enabled=enabled)
    from rcnn.device.base import DeviceError  # base imports this module

    raise DeviceError(
        f"fp16 loss scaling on {device_type} needs torch >= 2.3 (torch.amp.GradScaler) or a "
        f"plug-in with its own amp.GradScaler; this torch is {torch.__version__}: use bf16 or fp32"
    )


# torch.OutOfMemoryError (torch 2.4) is what torch.cuda.OutOfMemoryError (1.13) became.
OUT_OF_MEMORY_ERRORS: tuple[type[BaseException], ...] = (
    MemoryError,
    getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),
)


def current_accelerator_type() -> str | None:
    """The device type torch.accelerator (torch 2.6) reports as current; None before 2.6 or
    when no accelerator is available."""
    acc = getattr(torch, "accelerator", None)
    if acc is None or not acc.is_available():
        return None
    current = acc.current_accelerator()
    return current.type if current is not None else None


def accelerator_function(name: str) -> Callable[..., Any] | None:
    """torch.accelerator's function `name`, or None where this torch lacks it: the module is
    from 2.6, its memory functions (reset_peak_memory_stats, max_memory_allocated) from 2.9."""
    return getattr(getattr(torch, "accelerator", None), name, None)


def process_group_device(device_id: torch.device | None) -> dict[str, torch.device]:
    """init_process_group's `device_id` keyword (torch 2.3), where this torch takes it."""
    takes_it = "device_id" in inspect.signature(dist.init_process_group).parameters
    return {"device_id": device_id} if device_id is not None and takes_it else {}


def profiler_self_device_us(event: Any) -> float:
    """A profiler event's own time on the card, in microseconds. torch 2.4 named it
    self_device_time_total; earlier releases name it after CUDA, whatever the card."""
    if hasattr(event, "self_device_time_total"):
        return event.self_device_time_total or 0.0
    return event.self_cuda_time_total or 0.0
