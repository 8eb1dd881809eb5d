"""What the installed torch can do: the one place that tests torch features by version or hasattr.

The project runs on torch 2.1 through the pinned 2.14.1 (the torch that vendor images ship).
Each helper below names the release that brought the feature it stands in for; older releases
get the equivalent they had, or None where they had none (the caller says what that means).
Nothing here knows a backend: the device adapters (rcnn.device) ask these questions for theirs.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import logging
import re
import sys
from collections.abc import Callable, Iterator
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
    place, so state-dict names stay) and TorchDynamo's support of this Python. torch 2.1 has
    the method, but its dynamo skips Module._call_impl, so the module silently runs eager."""
    if torch_version() < (2, 2):
        return f"torch {torch.__version__} has no working nn.Module.compile (torch 2.2)"
    dynamo = importlib.import_module("torch._dynamo")
    supported = getattr(dynamo, "is_dynamo_supported", None)
    if supported is not None and not supported():
        python = ".".join(map(str, sys.version_info[:2]))
        return f"TorchDynamo in torch {torch.__version__} does not support Python {python}"
    return None


def recompile_limit() -> tuple[str, int]:
    """torch._dynamo's cap on the graphs one frame may compile, as (its config name, value):
    `recompile_limit` since torch 2.7, `cache_size_limit` before. Past it the frame runs eager."""
    config = importlib.import_module("torch._dynamo").config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    return name, int(getattr(config, name))


class _LimitHits(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.hits: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "hit config." in message:
            self.hits.append(message.splitlines()[0].strip())


@contextlib.contextmanager
def recompile_limit_hits() -> Iterator[list[str]]:
    """The recompile-limit hits while the block runs, one line each ("torch._dynamo hit
    config.recompile_limit (8)"): torch 2.1 to 2.14 say it only by this warning of the
    torch._dynamo logger, then run the frame eager."""
    handler = _LimitHits()
    logger = logging.getLogger("torch._dynamo")
    logger.addHandler(handler)
    try:
        yield handler.hits
    finally:
        logger.removeHandler(handler)


def _dynamo_is_compiling() -> Callable[[], bool]:
    """torch.compiler.is_compiling (torch 2.3), or torch._dynamo's own before it."""
    check = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    if check is None:
        check = importlib.import_module("torch._dynamo.external_utils").is_compiling
    return check


# Whether TorchDynamo is tracing the caller. Bound once, to torch's own function: a lookup inside
# traced code breaks the graph and the rest runs eagerly, where the answer is always False (the
# per-call lookup answered False under torch.compile on torch 2.1).
is_compiling: Callable[[], bool] = _dynamo_is_compiling()


@functools.cache
def autocast_error(device_type: str) -> Exception | None:
    """Why torch.autocast cannot be used on `device_type`, or None when it can: the one place
    that decides it. torch.amp.is_autocast_available (torch 2.4) is not enough: a plug-in whose
    module lacks get_amp_supported_dtype is "available", yet constructing torch.autocast raises
    AssertionError (2.1-2.3 raise RuntimeError for a type without autocast)."""
    check = getattr(torch.amp, "is_autocast_available", None)
    try:
        if check is not None and not check(device_type):
            return RuntimeError(f"torch {torch.__version__} has no autocast for '{device_type}'")
        torch.autocast(device_type=device_type, enabled=False)
    except (RuntimeError, AssertionError) as err:  # a device type torch does not know, too
        return err
    return None


def autocast_available(device_type: str) -> bool:
    """Whether torch.autocast can be constructed for `device_type` (see autocast_error)."""
    return autocast_error(device_type) is None


def grad_scaler(device_type: str, enabled: bool) -> Any | None:
    """torch.amp.GradScaler(device) (torch 2.3); None before it (the device adapter then
    takes its backend's own `<module>.amp.GradScaler`)."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device_type, enabled=enabled)
    return None


# torch.OutOfMemoryError (torch 2.4) is the class torch.cuda (and torch_mlu) called
# OutOfMemoryError before, torch._C._OutOfMemoryError.
OUT_OF_MEMORY_ERRORS: tuple[type[BaseException], ...] = (
    MemoryError,
    torch.OutOfMemoryError if hasattr(torch, "OutOfMemoryError") else torch._C._OutOfMemoryError,
)


def has_accelerator_api() -> bool:
    """Whether this torch has torch.accelerator (torch 2.6)."""
    return hasattr(torch, "accelerator")


def current_accelerator_type() -> str | None:
    """The device type torch.accelerator (torch 2.6) reports as current; None before 2.6 or
    when no accelerator is available."""
    if not has_accelerator_api() or not torch.accelerator.is_available():
        return None
    current = torch.accelerator.current_accelerator()
    return current.type if current is not None else None


def privateuse1_name() -> str | None:
    """The name an out-of-tree (PrivateUse1) plug-in gave its device, once it renamed it."""
    name = getattr(torch._C, "_get_privateuse1_backend_name", lambda: "privateuseone")()
    return None if name == "privateuseone" else name


def accelerator_function(name: str) -> Callable[..., Any] | None:
    """torch.accelerator's function `name`, or None where this torch lacks it: the module is
    from 2.6, its memory functions (reset_peak_memory_stats, max_memory_allocated) from 2.9."""
    return getattr(getattr(torch, "accelerator", None), name, None)


def pin_memory_pins_for_the_accelerator() -> bool:
    """Whether Tensor.pin_memory() pins for torch.accelerator's current device (torch 2.6, with
    torch.accelerator); before it, it pins for CUDA unless given a device."""
    return has_accelerator_api()


def backends_by_device() -> dict[str, list[str]]:
    """Every registered c10d backend and the device types it serves (Backend.backend_capability,
    torch 2.2); {} where this torch does not say."""
    return {b: list(d) for b, d in getattr(dist.Backend, "backend_capability", {}).items()}


def backend_registration_takes_devices() -> bool:
    """Backend.register_backend(..., devices=) (torch 2.2): one backend per device type."""
    return "devices" in inspect.signature(dist.Backend.register_backend).parameters


def fp32_precision_settings(root: ModuleType, *paths: str) -> list[Any] | None:
    """The settings objects at dotted `paths` under `root` (torch.backends) when each has an
    `fp32_precision` switch (torch 2.9, replacing the `allow_tf32` flags); else None."""
    found = []
    for path in paths:
        obj: Any = root
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if not hasattr(obj, "fp32_precision"):
            return None
        found.append(obj)
    return found


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
