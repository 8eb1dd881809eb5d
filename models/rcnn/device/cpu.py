"""The host CPU: always present, one "card", gloo for multi-process runs."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import torch

from .base import DeviceAdapter


def cpu_model() -> str:
    """The host CPU's model name, as the OS reports it."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _status_kb(field: str) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return None


def onednn_has_bf16() -> bool | None:
    """Whether oneDNN has bf16 kernels on this CPU (AVX-512 or AMX); None when torch cannot say."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # a torch built without oneDNN, or one that renamed the private query
        return None


def onednn_trains_nhwc() -> bool:
    """Whether torch's kernels for this CPU are its AVX-512 ones (AMX hosts included), where
    oneDNN's NHWC convolution backward is fast."""
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # a torch without the query
        return False
    return capability.startswith("AVX512") or "AMX" in capability


# The factor is a host's measurement, so it lives in a dated README row, not in this text.
SLOW_BF16 = (
    "cpu: this CPU has no oneDNN bf16 kernels (they need AVX-512 or AMX), so bf16 convolutions "
    "run on torch's reference path, far slower than fp32 (README, 'Other measurements on this "
    "CPU'); the bf16 numbers measure that path, not bf16 compute"
)


class CpuAdapter(DeviceAdapter):
    name = "cpu"
    dist_backend = "gloo"
    is_accelerator = False
    peak_memory_kind = "process_rss"
    compile_backend = "inductor"
    # The ops `benchmark ops` measured faster in their native form than torchvision's kernel
    # on the CPU; nms measured slower natively and stays on the kernel. The numbers, and
    # what they did to `compare`, are in the README ("Other measurements on this CPU").
    native_ops = frozenset({"roi_align", "roi_pool"})

    @property
    def channels_last_modes(self) -> frozenset[str]:  # type: ignore[override]
        """oneDNN's convolutions run faster in NHWC (README, compare table); its NHWC backward
        does where torch runs its AVX-512 kernels but measured far slower on an AVX2 host,
        which trains in NCHW (README, the training-layout row)."""
        return frozenset({"infer", "train"}) if onednn_trains_nhwc() else frozenset({"infer"})

    def unavailable_reason(self) -> str | None:
        return None

    def device_count(self) -> int:
        return 1

    def card_name(self, index: int) -> str:
        # threads vary per run (OMP_NUM_THREADS); a card name must not, or report rows split
        return f"{cpu_model()} ({os.cpu_count()} cores)"

    def card_memory_mb(self, index: int) -> float | None:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
        except (ValueError, OSError, AttributeError):
            return None

    def torch_device(self, index: int | None = None) -> torch.device:
        return torch.device("cpu")

    def set_device(self, index: int) -> None:
        pass

    def synchronize(self, index: int | None = None) -> None:
        pass  # CPU ops are synchronous

    def reset_peak_memory(self, index: int | None = None) -> None:
        # Linux resets the process's peak RSS (VmHWM) when "5" is written to clear_refs.
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")

    def peak_memory_mb(self, index: int | None = None) -> float | None:
        """Peak resident memory of this process (tensors and everything else) since the reset."""
        peak = _status_kb("VmHWM")
        return peak / 1024 if peak is not None else None

    def rng_state(self, index: int | None = None) -> torch.Tensor | None:
        return None  # the CPU generator is saved with the host RNG states

    def set_rng_state(self, state: torch.Tensor, index: int | None = None) -> None:
        pass

    def supported_precisions(self) -> tuple[str, ...]:
        # CPU autocast runs bf16 well; fp16 has no fast CPU kernels and tf32 is GPU math.
        return ("fp32", "bf16")

    def configure_precision(self, precision: str) -> None:
        super().configure_precision(precision)
        if precision == "bf16" and onednn_has_bf16() is False:
            self.note(SLOW_BF16)  # in the log and in the record's notes: the number is honest

    def environment(self) -> dict[str, str | None]:
        return {"plugin": None, "plugin_version": None, "driver": None}
