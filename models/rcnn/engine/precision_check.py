"""Which dtype a run's convolutions really ran in, so a precision that did not happen is an error.

A plug-in whose autocast covers no op runs fp32 work under a "bf16" label; the first
convolution of the backbone body shows what the bulk of the work (the convolutions) ran in.
"""

from __future__ import annotations

import torch
from torch import nn

EXPECTED_DTYPES = {
    "fp32": torch.float32,
    "tf32": torch.float32,  # TF32 is fp32 storage with reduced-mantissa math
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}


class PrecisionMismatch(RuntimeError):
    """The run's convolutions ran in another dtype than its precision asks for."""


def dtype_name(dtype: torch.dtype) -> str:
    """torch.bfloat16 -> 'bfloat16' (the record's spelling)."""
    return str(dtype).removeprefix("torch.")


def first_body_conv(model: nn.Module) -> nn.Conv2d | None:
    """The first convolution of the backbone body (the model's own when it has no body)."""
    model = getattr(model, "module", model)  # DistributedDataParallel wraps the detector
    body = getattr(getattr(model, "backbone", None), "body", model)
    return next((m for m in body.modules() if isinstance(m, nn.Conv2d)), None)


class ConvDtypeProbe:
    """A forward hook on the body's first convolution that remembers its output dtype.

    with ConvDtypeProbe(model) as probe:
        ... train or infer ...
    probe.check("bf16")  # raises PrecisionMismatch if the convs did not run in bfloat16
    """

    def __init__(self, model: nn.Module) -> None:
        self.dtype: torch.dtype | None = None
        conv = first_body_conv(model)
        self._handle = conv.register_forward_hook(self._seen) if conv is not None else None

    def _seen(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.dtype = output.dtype

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __enter__(self) -> ConvDtypeProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dtype_name(self) -> str | None:
        """The dtype seen, as the record writes it; None when no convolution ran."""
        return dtype_name(self.dtype) if self.dtype is not None else None

    def mismatch(self, precision: str, device: str = "") -> str | None:
        """Why the convolutions did not run in `precision`'s dtype, or None when they did (or
        when none ran)."""
        expected = EXPECTED_DTYPES[precision]
        if self.dtype is None or self.dtype == expected:
            return None
        where = f" on {device}" if device else ""
        return (
            f"precision {precision} asked for {dtype_name(expected)} convolutions, but they ran "
            f"in {dtype_name(self.dtype)}{where}: autocast did not cover them, so this is not a "
            f"{precision} measurement"
        )

    def check(self, precision: str, device: str = "") -> None:
        """Raise PrecisionMismatch, saying why, when the convolutions ran in another dtype."""
        why = self.mismatch(precision, device)
        if why is not None:
            raise PrecisionMismatch(why)
