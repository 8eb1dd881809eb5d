"""Convert a torchvision Faster/Mask R-CNN (ResNet-FPN) state dict to this project's names.

Name mapping (torchvision -> maskrcnn-benchmark layout):

- backbone.body.conv1 / bn1            -> backbone.body.stem.conv1 / bn1 (layer1..4 unchanged)
- backbone.fpn.inner_blocks.i[.0]      -> backbone.fpn.fpn_inner{i+1}
- backbone.fpn.layer_blocks.i[.0]      -> backbone.fpn.fpn_layer{i+1}
- rpn.head.conv[.0.0]                  -> rpn.head.conv (cls_logits, bbox_pred unchanged)
- roi_heads.box_head.fc6 / fc7         -> roi_heads.box.feature_extractor.fc6 / fc7
- roi_heads.box_predictor.*            -> roi_heads.box.predictor.*
- roi_heads.mask_head.i[.0] / mask_fcn{i+1} -> roi_heads.mask.feature_extractor.mask_fcn{i+1}
- roi_heads.mask_predictor.*           -> roi_heads.mask.predictor.*

Batch norm: torchvision normalises with eps 1e-5 (BatchNorm2d and its FrozenBatchNorm2d); the
frozen BN here computes weight / sqrt(running_var + eps_target). Folding the difference into
running_var (running_var + 1e-5 - eps_target) gives the same affine map exactly.
num_batches_tracked is dropped. The model to load into must use STRIDE_IN_1X1 False (torchvision
strides in the 3x3 conv) and NUM_CLASSES 91 for COCO-trained torchvision weights.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import nn

TORCHVISION_BN_EPS = 1e-5
_MASK_FCN = "roi_heads.mask.feature_extractor.mask_fcn"

_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), repl)
    for pattern, repl in (
        (r"^backbone\.body\.(conv1|bn1)\.", r"backbone.body.stem.\1."),
        (r"^(backbone\.body\.layer[1-4]\.)", r"\1"),
        (r"^backbone\.fpn\.inner_blocks\.(\d+)\.(?:0\.)?", "backbone.fpn.fpn_inner{}."),
        (r"^backbone\.fpn\.layer_blocks\.(\d+)\.(?:0\.)?", "backbone.fpn.fpn_layer{}."),
        (r"^rpn\.head\.conv\.(?:0\.0\.)?", "rpn.head.conv."),
        (r"^rpn\.head\.(cls_logits|bbox_pred)\.", r"rpn.head.\1."),
        (r"^roi_heads\.box_head\.(fc6|fc7)\.", r"roi_heads.box.feature_extractor.\1."),
        (r"^roi_heads\.box_predictor\.", "roi_heads.box.predictor."),
        (r"^roi_heads\.mask_head\.(\d+)\.(?:0\.)?", _MASK_FCN + "{}."),
        (r"^roi_heads\.mask_head\.mask_fcn(\d+)\.", _MASK_FCN + r"\1."),
        (r"^roi_heads\.mask_predictor\.", "roi_heads.mask.predictor."),
    )
)


def _rename(key: str) -> str | None:
    for pattern, repl in _RULES:
        match = pattern.match(key)
        if match is None:
            continue
        if "{}" in repl:
            # 0-based torchvision block index -> 1-based maskrcnn-benchmark suffix.
            return repl.format(int(match.group(1)) + 1) + key[match.end() :]
        return pattern.sub(repl, key, count=1)
    return None


def convert_torchvision_detection(
    state_dict: Mapping[str, torch.Tensor], target_bn_eps: float = 0.0
) -> OrderedDict[str, torch.Tensor]:
    """torchvision detection weights renamed to this project's keys, BN eps folded.

    `target_bn_eps` is the eps of the frozen BN the weights go into (0 for maskrcnn-benchmark's).
    Raises ValueError naming any key it does not know (e.g. keypoint heads).
    """
    converted: OrderedDict[str, torch.Tensor] = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key.endswith("num_batches_tracked"):
            continue
        new_key = _rename(key)
        if new_key is None:
            unknown.append(key)
            continue
        if new_key.startswith("backbone.body.") and new_key.endswith(".running_var"):
            value = value + (TORCHVISION_BN_EPS - target_bn_eps)
        converted[new_key] = value
    if unknown:
        raise ValueError(
            f"torchvision keys with no counterpart here: {unknown[:10]}"
            f"{' ...' if len(unknown) > 10 else ''}"
        )
    return converted


def load_torchvision_detection(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], target_bn_eps: float = 0.0
) -> None:
    """Load converted torchvision weights into `model`; only the anchor buffers (which torchvision
    does not store) may be missing, anything else is an error that lists the keys."""
    converted = convert_torchvision_detection(state_dict, target_bn_eps)
    result = model.load_state_dict(converted, strict=False)
    missing = [k for k in result.missing_keys if ".cell_anchors." not in k]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"torchvision weights do not fit the model: missing {missing[:10]}, "
            f"unexpected {result.unexpected_keys[:10]}"
        )
