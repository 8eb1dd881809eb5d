"""Name -> builder tables, so a config string picks a module and new parts plug in by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rcnn.config.loader import ConfigError


class UnknownNameError(ConfigError, KeyError):
    """A config names a module no registry has (a config mistake, so a ConfigError)."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(dict):
    """A dict of builders with a `register(name)` decorator and a helpful missing-key error."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[Any], Any]:
        def _register(fn: Any) -> Any:
            if name in self:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            self[name] = fn
            return fn

        return _register

    def __missing__(self, name: str) -> Any:
        raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {sorted(self)}")


BACKBONES = Registry("backbone (MODEL.BACKBONE.CONV_BODY)")
RESNET_BLOCKS = Registry("ResNet block (MODEL.RESNETS.TRANS_FUNC)")
RESNET_STEMS = Registry("ResNet stem (MODEL.RESNETS.STEM_FUNC)")
RPN_HEADS = Registry("RPN head (MODEL.RPN.RPN_HEAD)")
ROI_BOX_FEATURE_EXTRACTORS = Registry("box feature extractor (ROI_BOX_HEAD.FEATURE_EXTRACTOR)")
ROI_BOX_PREDICTOR = Registry("box predictor (MODEL.ROI_BOX_HEAD.PREDICTOR)")
# Extra ROI heads (mask, keypoint) register a builder `fn(cfg, in_channels) -> nn.Module` here.
ROI_HEADS = Registry("ROI head")
