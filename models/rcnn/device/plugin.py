"""Any other PyTorch device whose plug-in registers a torch.cuda-like namespace.

`RCNN_DEVICE_PLUGIN=module` names the plug-in to import (for example a vendor's `torch_xyz`);
`resolve("xyz")` then finds `torch.xyz`. Collectives use the backend in `RCNN_DIST_BACKEND`, else
the plug-in's own (a c10d backend registered for the device), else gloo through host copies.
"""

from __future__ import annotations

import os

from .base import DeviceAdapter
from .host_staged import collective_for


class PluginAdapter(DeviceAdapter):
    def __init__(self, name: str, plugin: str | None = None, dist_backend: str | None = None):
        super().__init__()
        self.name = name
        self.plugin = plugin
        # without a collective of its own, the card joins through gloo on host copies
        self.dist_backend = (
            dist_backend or os.environ.get("RCNN_DIST_BACKEND") or collective_for(name)
        )
        self.install_hint = (
            f"install the vendor plug-in that registers torch.{name} and name it in "
            "RCNN_DEVICE_PLUGIN"
        )
