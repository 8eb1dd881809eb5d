"""ResNet / ResNeXt bodies with frozen batch norm or group norm, in maskrcnn-benchmark's layout.

Parameter names: `stem.conv1`, `stem.bn1`, `layer1..layer4`, blocks `conv1..3`, `bn1..3`,
`downsample.0` (conv) / `downsample.1` (norm), so maskrcnn-benchmark checkpoints load as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from rcnn.compat import is_compiling
from rcnn.layers import FrozenBatchNorm2d
from rcnn.modeling.registry import RESNET_BLOCKS, RESNET_STEMS

# A norm factory: channels -> module. Frozen BN for pretrained bodies; GN to train from scratch.
Norm = Callable[[int], nn.Module]


def group_norm(
    channels: int, num_groups: int = 32, dim_per_group: int = -1, eps: float = 1e-5
) -> nn.GroupNorm:
    """maskrcnn-benchmark's GN rule: a fixed group count, or a fixed width per group."""
    groups = channels // dim_per_group if dim_per_group > 0 else min(num_groups, channels)
    return nn.GroupNorm(groups, channels, eps=eps)


@dataclass(frozen=True)
class StageSpec:
    """One residual stage: its index (1 = res2 ... 4 = res5) and number of blocks."""

    index: int
    block_count: int


# Depth -> stage specs (res2..res5); the FPN uses every stage's output.
STAGE_SPECS: dict[int, tuple[StageSpec, ...]] = {
    18: (StageSpec(1, 2), StageSpec(2, 2), StageSpec(3, 2), StageSpec(4, 2)),
    34: (StageSpec(1, 3), StageSpec(2, 4), StageSpec(3, 6), StageSpec(4, 3)),
    50: (StageSpec(1, 3), StageSpec(2, 4), StageSpec(3, 6), StageSpec(4, 3)),
    101: (StageSpec(1, 3), StageSpec(2, 4), StageSpec(3, 23), StageSpec(4, 3)),
    152: (StageSpec(1, 3), StageSpec(2, 8), StageSpec(3, 36), StageSpec(4, 3)),
}


def _conv(
    in_ch: int,
    out_ch: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> nn.Conv2d:
    conv = nn.Conv2d(
        in_ch,
        out_ch,
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=False,
    )
    # maskrcnn-benchmark's init for body convs (only matters when training from scratch).
    nn.init.kaiming_uniform_(conv.weight, a=1)
    return conv


def conv_norm(conv: nn.Conv2d, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """norm(conv(x)); a frozen BN is folded into the conv's weight and bias instead, which saves
    two passes over the activations (the same affine map, up to float rounding)."""
    if not isinstance(norm, FrozenBatchNorm2d) or conv.bias is not None:
        return norm(conv(x))
    weight, shift = _folded(conv, norm, x.dtype)
    return F.conv2d(x, weight, shift, conv.stride, conv.padding, conv.dilation, conv.groups)


def _scale_shift(norm: FrozenBatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
    return scale.view(-1, 1, 1, 1), norm.bias - norm.running_mean * scale


def _folded(
    conv: nn.Conv2d, norm: FrozenBatchNorm2d, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """The folded weight and bias. The norm's scale and shift are kept while its buffers are
    unchanged; the folded weight too while no gradient flows through it (inference, frozen
    stages), cast once for half-precision activations (autocast would cast it every call)."""
    buffers = (norm.weight, norm.bias, norm.running_mean, norm.running_var)
    scale, shift = _kept(norm, buffers, (), lambda: _scale_shift(norm))
    if torch.is_grad_enabled() and conv.weight.requires_grad:
        return conv.weight * scale, shift
    half = dtype if dtype in (torch.float16, torch.bfloat16) else None

    def fold() -> tuple[torch.Tensor, torch.Tensor]:
        weight = conv.weight * scale
        return (weight, shift) if half is None else (weight.to(half), shift.to(half))

    return _kept(conv, (conv.weight, *buffers), (half,), fold)


def _kept(owner: nn.Module, tensors: tuple, extra: tuple, make: Callable[[], tuple]) -> tuple:
    """make()'s tensors, kept on `owner` while `tensors` stay the same objects at the same
    version (an in-place update, a checkpoint load or a move makes them again). Under
    torch.compile the work is traced into the graph instead."""
    if is_compiling() or any(t.is_inference() for t in tensors):  # no version counter
        return make()
    key = (
        *((t.data_ptr(), t._version) for t in tensors),
        *extra,
        torch.is_inference_mode_enabled(),  # inference tensors cannot enter autograd
    )
    kept = owner.__dict__.get("_kept_fold")
    if kept is None or kept[0] != key:
        kept = (key, make())
        owner.__dict__["_kept_fold"] = kept
    return kept[1]


def _residual(x: torch.Tensor, downsample: nn.Module | None) -> torch.Tensor:
    return x if downsample is None else conv_norm(downsample[0], downsample[1], x)


def _downsample(in_channels: int, out_channels: int, stride: int, norm: Norm) -> nn.Module | None:
    if in_channels == out_channels and stride == 1:
        return None
    return nn.Sequential(_conv(in_channels, out_channels, 1, stride=stride), norm(out_channels))


@RESNET_STEMS.register("StemWithFixedBatchNorm")
class Stem(nn.Module):
    """7x7/2 conv, norm, ReLU, 3x3/2 max pool: stride 4 overall."""

    def __init__(self, out_channels: int = 64, norm: Norm = FrozenBatchNorm2d) -> None:
        super().__init__()
        self.conv1 = _conv(3, out_channels, 7, stride=2, padding=3)
        self.bn1 = norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(conv_norm(self.conv1, self.bn1, x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


@RESNET_BLOCKS.register("BottleneckWithFixedBatchNorm")
class Bottleneck(nn.Module):
    """1x1 -> 3x3 (grouped for ResNeXt) -> 1x1 with a residual; stride in the 1x1 (MSRA/Caffe2
    weights, `stride_in_1x1`) or in the 3x3 (torchvision/FB weights)."""

    def __init__(
        self,
        in_channels: int,
        bottleneck_channels: int,
        out_channels: int,
        num_groups: int = 1,
        stride_in_1x1: bool = True,
        stride: int = 1,
        dilation: int = 1,
        norm: Norm = FrozenBatchNorm2d,
    ) -> None:
        super().__init__()
        # With dilation the spatial stride is dropped, as in maskrcnn-benchmark.
        self.downsample = _downsample(
            in_channels, out_channels, stride if dilation == 1 else 1, norm
        )
        if dilation > 1:
            stride = 1
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = _conv(in_channels, bottleneck_channels, 1, stride=stride_1x1)
        self.bn1 = norm(bottleneck_channels)
        self.conv2 = _conv(
            bottleneck_channels,
            bottleneck_channels,
            3,
            stride=stride_3x3,
            padding=dilation,
            dilation=dilation,
            groups=num_groups,
        )
        self.bn2 = norm(bottleneck_channels)
        self.conv3 = _conv(bottleneck_channels, out_channels, 1)
        self.bn3 = norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = _residual(x, self.downsample)
        out = F.relu_(conv_norm(self.conv1, self.bn1, x))
        out = F.relu_(conv_norm(self.conv2, self.bn2, out))
        out = conv_norm(self.conv3, self.bn3, out)
        # In place: the conv/norm output is not needed by autograd.
        out += identity
        return F.relu_(out)


@RESNET_BLOCKS.register("BasicBlockWithFixedBatchNorm")
class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual (ResNet-18/34); stride in the first conv."""

    def __init__(
        self,
        in_channels: int,
        bottleneck_channels: int,
        out_channels: int,
        num_groups: int = 1,
        stride_in_1x1: bool = True,
        stride: int = 1,
        dilation: int = 1,
        norm: Norm = FrozenBatchNorm2d,
    ) -> None:
        super().__init__()
        if num_groups != 1:
            raise ValueError("BasicBlock supports MODEL.RESNETS.NUM_GROUPS 1 only")
        self.downsample = _downsample(
            in_channels, out_channels, stride if dilation == 1 else 1, norm
        )
        if dilation > 1:
            stride = 1
        self.conv1 = _conv(
            in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation
        )
        self.bn1 = norm(out_channels)
        self.conv2 = _conv(out_channels, out_channels, 3, padding=dilation, dilation=dilation)
        self.bn2 = norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = _residual(x, self.downsample)
        out = F.relu_(conv_norm(self.conv1, self.bn1, x))
        out = conv_norm(self.conv2, self.bn2, out)
        out += identity
        return F.relu_(out)


class ResNet(nn.Module):
    """Stem + stages layer1..layer4; returns every stage's output (C2..C5) for the FPN.

    Stage i (1-based) has `res2_out_channels * 2**(i-1)` output channels and
    `num_groups * width_per_group * 2**(i-1)` bottleneck channels.
    """

    def __init__(
        self,
        stage_specs: Sequence[StageSpec],
        block: type[nn.Module],
        stem_out_channels: int = 64,
        res2_out_channels: int = 256,
        num_groups: int = 1,
        width_per_group: int = 64,
        stride_in_1x1: bool = True,
        res5_dilation: int = 1,
        freeze_at: int = 2,
        norm: Norm = FrozenBatchNorm2d,
        stem: type[nn.Module] = Stem,
    ) -> None:
        super().__init__()
        self.stem = stem(stem_out_channels, norm=norm)
        in_channels = stem_out_channels
        self.stage_names: list[str] = []
        for spec in stage_specs:
            factor = 2 ** (spec.index - 1)
            out_channels = res2_out_channels * factor
            dilation = res5_dilation if spec.index == 4 else 1
            blocks = []
            for i in range(spec.block_count):
                first_stride = 2 if spec.index > 1 else 1
                blocks.append(
                    block(
                        in_channels,
                        num_groups * width_per_group * factor,
                        out_channels,
                        num_groups=num_groups,
                        stride_in_1x1=stride_in_1x1,
                        stride=first_stride if i == 0 else 1,
                        dilation=dilation,
                        norm=norm,
                    )
                )
                in_channels = out_channels
            name = f"layer{spec.index}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
        self.out_channels = [res2_out_channels * 2 ** (s.index - 1) for s in stage_specs]
        self.freeze(freeze_at)

    def freeze(self, freeze_at: int) -> None:
        """Stop gradients to the stem (0) and stages 1..freeze_at-1 (maskrcnn-benchmark's rule)."""
        modules = [self.stem] + [getattr(self, n) for n in self.stage_names]
        for module in modules[: max(freeze_at, 0)]:
            for p in module.parameters():
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for name in self.stage_names:
            x = getattr(self, name)(x)
            outputs.append(x)
        return outputs


# maskrcnn-benchmark's GN names: the same blocks with group norm in place of frozen BN.
RESNET_BLOCKS.register("BottleneckWithGN")(Bottleneck)
RESNET_BLOCKS.register("BasicBlockWithGN")(BasicBlock)
RESNET_STEMS.register("StemWithGN")(Stem)
NORM_OF = {"BottleneckWithGN": "gn", "BasicBlockWithGN": "gn", "StemWithGN": "gn"}


def make_norm(
    trans_func: str, stem_func: str, num_groups: int, dim_per_group: int, eps: float
) -> Norm:
    """Frozen BN unless the config names GN blocks or stem (mixing the two is refused)."""
    kinds = {NORM_OF.get(trans_func, "frozen_bn"), NORM_OF.get(stem_func, "frozen_bn")}
    if len(kinds) > 1:
        raise ValueError(
            f"MODEL.RESNETS.TRANS_FUNC {trans_func!r} and STEM_FUNC {stem_func!r} use different "
            "norms; use both *WithGN or both *WithFixedBatchNorm"
        )
    if kinds == {"gn"}:
        return partial(group_norm, num_groups=num_groups, dim_per_group=dim_per_group, eps=eps)
    return FrozenBatchNorm2d
