"""The dtype detection ops compute in, whatever the input dtype or autocast says."""

from __future__ import annotations

import contextlib

import torch

from rcnn.compat import autocast_available


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything else (float16, bfloat16, float32) runs in float32.

    torchvision's autocast wrappers do the same: half-precision sampling weights and IoUs lose
    too much (fp16 has 11 significant bits, bf16 8) for box and feature coordinates.
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Disable autocast on `device` so the op's matmuls stay in its compute dtype; nothing to
    disable where torch.autocast cannot be constructed (rcnn.compat decides that, once)."""
    if autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()
