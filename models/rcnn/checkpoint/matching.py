"""Match a state dict against a model (or another state dict) and report every disagreement."""

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from rcnn.checkpoint.errors import CheckpointError

StateDict = dict[str, torch.Tensor]
# BatchNorm's step counter is not a weight; frozen BN has none
_IGNORED_SUFFIXES = ("num_batches_tracked",)
_MODULE_PREFIX = "module."


@dataclass
class LoadReport:
    """What loading a checkpoint into a model matched, and what it did not."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    # (key, shape in the checkpoint, shape in the model)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 10) -> str:
        lines = [
            f"{self.source}: checkpoint does not match the model: {len(self.loaded)} loaded, "
            f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
            f"{len(self.mismatched)} with a different shape"
        ]
        shapes = [f"{k} (checkpoint {list(a)}, model {list(b)})" for k, a, b in self.mismatched]
        for title, items in (
            ("missing from the checkpoint", self.missing),
            ("unexpected in the checkpoint", self.unexpected),
            ("shape differs", shapes),
        ):
            if items:
                more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
                lines.append(f"  {title} ({len(items)}): {', '.join(items[:limit])}{more}")
        return "\n".join(lines)


def strip_module_prefix(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Drop DistributedDataParallel's ``module.`` when every key carries it."""
    if state and all(k.startswith(_MODULE_PREFIX) for k in state):
        return {k[len(_MODULE_PREFIX) :]: v for k, v in state.items()}
    return dict(state)


def load_state_dict_into(
    target: nn.Module | StateDict,
    state: Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
    source: str = "<state dict>",
    scope: str = "",
) -> LoadReport:
    """Copy ``state`` into ``target`` (a module, or a state dict updated in place).

    Only target keys under ``scope`` (e.g. ``"backbone.body."`` for an ImageNet backbone) count
    as missing. ``strict`` raises CheckpointError listing every disagreement before anything is
    copied; otherwise what matches is loaded and the report says what did not.
    """
    expected = target.state_dict() if isinstance(target, nn.Module) else target
    report = LoadReport(source=source)
    accepted: StateDict = {}
    for key, value in state.items():
        if key.endswith(_IGNORED_SUFFIXES):
            continue
        if key not in expected:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(expected[key].shape):
            report.mismatched.append((key, tuple(value.shape), tuple(expected[key].shape)))
        else:
            accepted[key] = value
            report.loaded.append(key)
    report.missing = [
        k
        for k in expected
        if k.startswith(scope) and k not in state and not k.endswith(_IGNORED_SUFFIXES)
    ]
    if strict and not report.ok:
        raise CheckpointError(report.summary())
    if isinstance(target, nn.Module):
        target.load_state_dict(accepted, strict=False)
    else:
        for key, value in accepted.items():
            target[key] = value.detach().clone().to(dtype=target[key].dtype)
    return report
