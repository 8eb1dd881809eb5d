"""Small detectors with maskrcnn-benchmark's state dict names, independent of rcnn.modeling."""

import numpy as np
import torch
from torch import nn


class FrozenBN(nn.Module):
    """maskrcnn-benchmark's frozen BN keeps exactly these four buffers."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("weight", torch.rand(channels) + 0.5)
        self.register_buffer("bias", torch.randn(channels))
        self.register_buffer("running_mean", torch.randn(channels))
        self.register_buffer("running_var", torch.rand(channels) + 0.5)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, stride=stride, bias=False)
        self.bn1 = FrozenBN(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = FrozenBN(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = FrozenBN(cout)
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), FrozenBN(cout)
            )


class BasicBlock(nn.Module):
    def __init__(self, cin: int, width: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = FrozenBN(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = FrozenBN(cout)
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), FrozenBN(cout)
            )


def make_stage(block: type, blocks: int, cin: int, width: int, cout: int, stride: int):
    layers = [
        block(cin if i == 0 else cout, width, cout, stride if i == 0 else 1) for i in range(blocks)
    ]
    return nn.Sequential(*layers)


def tiny_detector(
    block: type = Bottleneck,
    blocks: tuple[int, ...] = (1, 2, 1, 1),
    widths: tuple[int, ...] = (2, 4, 4, 8),
    stem: int = 4,
    expansion: int = 2,
) -> nn.Module:
    """backbone.body.{stem,layer1..4} + an RPN conv and a box predictor."""
    body = nn.Module()
    body.stem = nn.Module()
    body.stem.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False)
    body.stem.bn1 = FrozenBN(stem)
    cin = stem
    stages = []
    for i, (n, width) in enumerate(zip(blocks, widths, strict=True)):
        stages.append(make_stage(block, n, cin, width, width * expansion, 1 if i == 0 else 2))
        cin = width * expansion
    for i, stage in enumerate(stages, 1):
        setattr(body, f"layer{i}", stage)
    model = nn.Module()
    model.backbone = nn.Module()
    model.backbone.body = body
    model.rpn = nn.Module()
    model.rpn.head = nn.Module()
    model.rpn.head.conv = nn.Conv2d(cin, 8, 3)
    model.roi_heads = nn.Module()
    model.roi_heads.box = nn.Module()
    model.roi_heads.box.predictor = nn.Module()
    model.roi_heads.box.predictor.cls_score = nn.Linear(8, 4)
    return model


def detectron_blobs(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's body as a Detectron ImageNet .pkl would hold it (affine BN: s and b only)."""
    branch = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c"}
    blobs = {}
    for key, value in model.state_dict().items():
        parts = key.split(".")
        # Detectron's affine BN has no running statistics
        if not key.startswith("backbone.body.") or "running_" in key:
            continue
        array = value.numpy().copy()
        param = parts[-1]
        bn_param = "s" if param == "weight" else "b"
        if parts[2] == "stem":
            name = "conv1_w" if parts[3] == "conv1" else f"res_conv1_bn_{bn_param}"
        else:
            layer = next(p for p in parts if p.startswith("layer"))
            stage = int(layer[len("layer") :]) + 1
            index = parts.index(layer)
            block, module = parts[index + 1], parts[index + 2]
            if module == "downsample":
                module = "conv" if parts[index + 3] == "0" else "bn"
                prefix = f"res{stage}_{block}_branch1"
            else:
                prefix = f"res{stage}_{block}_{branch[module.replace('bn', 'conv')]}"
            name = f"{prefix}_bn_{bn_param}" if module.startswith("bn") else f"{prefix}_w"
        blobs[name] = array
    return blobs
