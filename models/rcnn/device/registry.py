"""Find the adapter for a device spec: "auto", "cpu", "cuda", "cuda:1", "mlu", "npu:0", ..."""

from __future__ import annotations

import importlib
import os

import torch

from rcnn import compat

from .base import DeviceAdapter
from .cpu import CpuAdapter
from .cuda import CudaAdapter
from .errors import DeviceError
from .mlu import MluAdapter
from .mps import MpsAdapter
from .npu import NpuAdapter
from .plugin import PluginAdapter
from .xpu import XpuAdapter

# Order is the preference of "auto" among accelerators; cpu is the last resort.
_ADAPTERS: dict[str, DeviceAdapter] = {
    a.name: a
    for a in (CudaAdapter(), MluAdapter(), NpuAdapter(), XpuAdapter(), MpsAdapter(), CpuAdapter())
}


def register(adapter: DeviceAdapter) -> None:
    """Add (or replace) a backend; adding a vendor is adding one adapter."""
    _ADAPTERS[adapter.name] = adapter


def _import_named_plugin() -> str | None:
    """Import the module named in RCNN_DEVICE_PLUGIN (if any); return its name."""
    plugin = os.environ.get("RCNN_DEVICE_PLUGIN")
    if plugin:
        try:
            importlib.import_module(plugin)
        except Exception as err:  # a broken vendor install raises anything
            raise DeviceError(f"RCNN_DEVICE_PLUGIN={plugin} failed to import: {err}") from err
    return plugin or None


def all_adapters() -> list[DeviceAdapter]:
    """Every built-in backend, and the device of the plug-in named in RCNN_DEVICE_PLUGIN."""
    if _import_named_plugin():
        name = compat.privateuse1_name()
        if name is not None and name not in _ADAPTERS:
            get_adapter(name)
    return list(_ADAPTERS.values())


def _is_device_type(name: str) -> bool:
    """A device torch knows (a plug-in's once imported), not any torch module with an
    `is_available` (torch.distributed, torch.backends.*)."""
    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        return False
    return True


def get_adapter(name: str) -> DeviceAdapter:
    if name in _ADAPTERS:
        return _ADAPTERS[name]
    plugin = _import_named_plugin()
    if _is_device_type(name) and hasattr(getattr(torch, name, None), "is_available"):
        register(PluginAdapter(name, plugin))
        return _ADAPTERS[name]
    known = ", ".join(["auto", *_ADAPTERS])
    raise DeviceError(
        f"unknown device '{name}'; known: {known}. For another vendor's device, install its "
        "PyTorch plug-in and set RCNN_DEVICE_PLUGIN to its module name"
    )


def _auto() -> DeviceAdapter:
    current = compat.current_accelerator_type()
    if current is not None and current in _ADAPTERS:
        return _ADAPTERS[current]
    for adapter in _ADAPTERS.values():
        if adapter.is_accelerator and adapter.is_available():
            return adapter
    return _ADAPTERS["cpu"]


def _parse(spec: str) -> tuple[str, int | None]:
    name, _, index = spec.strip().lower().partition(":")
    if not index:
        return name, None
    if not index.isdigit():
        raise DeviceError(f"bad device '{spec}': the card index after ':' must be a number")
    return name, int(index)


def resolve(spec: str = "auto", precision: str | None = None) -> tuple[DeviceAdapter, int]:
    """Return (adapter, card index) for a spec, or raise DeviceError before any work.

    With no index, a process started by torchrun takes card LOCAL_RANK, others card 0.
    """
    name, index = _parse(spec or "auto")
    adapter = _auto() if name == "auto" else get_adapter(name)
    adapter.require()
    if index is None:
        index = int(os.environ.get("LOCAL_RANK", 0)) if adapter.is_accelerator else 0
    count = adapter.device_count()
    if index >= count:
        visible = adapter._visible_hint()
        raise DeviceError(
            f"device '{adapter.name}:{index}' requested but only {count} {adapter.name} "
            f"card(s) are visible{visible}"
        )
    if precision is not None:
        adapter.check_precision(precision)
    return adapter, index
