"""Intel GPUs through torch.xpu (built into torch since 2.4)."""

from __future__ import annotations

from .base import DeviceAdapter


class XpuAdapter(DeviceAdapter):
    name = "xpu"
    dist_backend = "xccl"
    visible_devices_env = "ZE_AFFINITY_MASK"
    install_hint = "install a torch build with XPU support and Intel's GPU driver"
