"""Device adapters: the only place that knows which backend the code runs on."""

from .base import PRECISIONS, CardInfo, DeviceAdapter
from .errors import DeviceError
from .host import on_host
from .registry import all_adapters, get_adapter, register, resolve

__all__ = [
    "PRECISIONS",
    "CardInfo",
    "DeviceAdapter",
    "DeviceError",
    "all_adapters",
    "get_adapter",
    "on_host",
    "register",
    "resolve",
]
