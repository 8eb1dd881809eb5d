"""Host memory versus a card's: the one question about a tensor's place that callers may ask."""

from __future__ import annotations

import torch


def on_host(device: torch.device | str) -> bool:
    """Whether `device` is host memory (the CPU), where reading a value needs no copy or sync."""
    return torch.device(device).type == "cpu"
