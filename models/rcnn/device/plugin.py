"""Any other PyTorch device whose plug-in registers a torch.cuda-like namespace.

`RCNN_DEVICE_PLUGIN=module` names the plug-in to import (for example a vendor's `torch_xyz`);
`resolve("xyz")` then finds `torch.xyz`. Collectives use the backend in `RCNN_DIST_BACKEND`.
"""

from __future__ import annotations

import os

from .base import DeviceAdapter


class PluginAdapter(DeviceAdapter):
    def __init__(self, name: str, plugin: str | None = None, dist_backend: str | None = None):
        self.name = name
        self.plugin = plugin
        self.dist_backend = dist_backend or os.environ.get("RCNN_DIST_BACKEND", "gloo")
        self.install_hint = (
            f"install the vendor plug-in that registers torch.{name} and name it in "
            "RCNN_DEVICE_PLUGIN"
        )
