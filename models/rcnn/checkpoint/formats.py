"""Read weight files and rename their keys to this project's (maskrcnn-benchmark's) names.

- maskrcnn-benchmark / our ``.pth``: ``{"model": state_dict, ...}`` or a bare state dict, maybe
  with DDP's ``module.`` prefix; read with ``torch.load(weights_only=True)``.
- torchvision ImageNet ResNet ``.pth`` (``conv1.weight``, ``layer1.0.conv1.weight``, ``fc.*``).
- Detectron ImageNet ``.pkl`` (``res2_0_branch2a_w``, ``res_conv1_bn_s``, ...), read by the
  restricted unpickler.

Both ImageNet formats come out under ``backbone.body.`` with frozen-BN buffers (weight, bias,
running_mean, running_var); classifier weights are dropped. ``bn_eps`` is the eps of the frozen
BN the weights go into (0 in maskrcnn-benchmark, which divides by sqrt(running_var)); the
source's own eps (1e-5 for torchvision, none for Detectron's affine channel) is folded into
running_var so that the loaded BN computes the same affine map as the source.
"""

import os
import pickle
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rcnn.checkpoint.errors import CheckpointError
from rcnn.checkpoint.matching import StateDict, strip_module_prefix
from rcnn.checkpoint.safe_pickle import load_restricted_pickle

BODY = "backbone.body."
DETECTRON = "detectron"
TORCHVISION = "torchvision"
MASKRCNN = "maskrcnn"

# Detectron branch -> (conv name, bn name) in a block
_BRANCHES = {
    "1": ("downsample.0", "downsample.1"),
    "2a": ("conv1", "bn1"),
    "2b": ("conv2", "bn2"),
    "2c": ("conv3", "bn3"),
}
_DETECTRON_BLOCK = re.compile(r"^res([2-5])_(\d+)_branch(1|2a|2b|2c)(_bn)?_([wbs])$")
# classifier and solver blobs that a detector never uses
_DETECTRON_DROPPED = re.compile(r"^(fc1000|pred)_[wb]$|_momentum$")
_TORCHVISION_DROPPED = re.compile(r"^fc\.|num_batches_tracked$")
TORCHVISION_BN_EPS = 1e-5


@dataclass
class Weights:
    """A state dict in our names, where it came from, and source keys dropped on purpose."""

    state: StateDict
    kind: str
    source: str
    dropped: list[str] = field(default_factory=list)


def read_torch_file(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on cpu, with every failure a CheckpointError."""
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise CheckpointError(f"{source}: checkpoint file not found")
    with open(source, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive; torch < 1.6 wrote a pickle (protocol 2+ starts with 0x80)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise CheckpointError(f"{source}: not a torch checkpoint (it starts with {head!r})")
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch 2.1: "Unsupported class x.y"; up to 2.5: "Unsupported global: GLOBAL x.y";
        # 2.6+: "unsupported GLOBAL x.y whose ..."
        refused = re.search(
            r"unsupported (?:global(?:: GLOBAL)?|class) (\S+)", str(e), re.IGNORECASE
        )
        if refused:
            raise CheckpointError(
                f"{source}: refused to load: it holds a Python object ({refused.group(1)}) "
                "beyond tensors and plain containers, and loading it could run code"
            ) from None
        raise CheckpointError(f"{source}: not a torch checkpoint: {_first_line(e)}") from None
    except Exception as e:  # truncated zip, damaged pickle, ...
        raise CheckpointError(
            f"{source}: not a readable torch checkpoint (truncated or damaged): "
            f"{type(e).__name__}: {_first_line(e)}"
        ) from None


def read_weights(path: str | os.PathLike, bn_eps: float = 0.0) -> Weights:
    """Any supported weight file as a state dict in our names."""
    source = os.fspath(path)
    if source.endswith(".pkl"):
        blobs = load_restricted_pickle(source)
        if isinstance(blobs, dict) and isinstance(blobs.get("blobs"), dict):
            blobs = blobs["blobs"]
        if not isinstance(blobs, dict):
            raise CheckpointError(
                f"{source}: expected a dict of Detectron blobs, got {type(blobs).__name__}"
            )
        return from_detectron(blobs, source, bn_eps)
    state = state_dict_of(read_torch_file(source), source)
    if looks_like_torchvision_resnet(state):
        return from_torchvision(state, source, bn_eps)
    return Weights(state, MASKRCNN, source)


def state_dict_of(checkpoint: Any, source: str) -> StateDict:
    """The model state dict in a loaded ``.pth``: under ``"model"``, or the whole dict."""
    if isinstance(checkpoint, dict) and "model" in checkpoint:
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{source}: expected a state dict or {{'model': state_dict}}, "
            f"got {type(checkpoint).__name__}"
        )
    for key, value in checkpoint.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{source}: not a state dict: entry {key!r} holds {type(value).__name__}, "
                "not a tensor"
            )
    return strip_module_prefix(checkpoint)


def looks_like_torchvision_resnet(state: StateDict) -> bool:
    return "conv1.weight" in state and "layer1.0.conv1.weight" in state


def from_torchvision(
    state: StateDict, source: str = "<torchvision>", bn_eps: float = 0.0
) -> Weights:
    """torchvision ResNet/ResNeXt names -> ``backbone.body.*`` (stem, layer1..4)."""
    out: StateDict = {}
    dropped = []
    for key, value in state.items():
        if key.endswith("running_var"):
            value = value + (TORCHVISION_BN_EPS - bn_eps)
        if _TORCHVISION_DROPPED.search(key):
            dropped.append(key)
        elif key.startswith(("conv1.", "bn1.")):
            out[f"{BODY}stem.{key}"] = value
        elif key.startswith("layer"):
            out[BODY + key] = value
        else:
            # left in its own name so that loading reports it as unexpected
            out[key] = value
    return Weights(out, TORCHVISION, source, dropped)


def from_detectron(
    blobs: dict[str, Any], source: str = "<detectron>", bn_eps: float = 0.0
) -> Weights:
    """Detectron (Caffe2) ImageNet ResNet blobs -> ``backbone.body.*`` tensors.

    Detectron's affine-channel BN is ``y = s * x + b``: it becomes a frozen BN with weight s,
    bias b, running_mean 0 and running_var 1 (1 - bn_eps, so that the divisor is exactly 1).
    """
    out: StateDict = {}
    dropped = []
    for name, blob in blobs.items():
        if _DETECTRON_DROPPED.search(name) or not isinstance(blob, np.ndarray):
            dropped.append(name)
            continue
        tensor = torch.from_numpy(np.ascontiguousarray(blob))
        key, is_bn = _detectron_key(name)
        out[key] = tensor
        if is_bn and key.endswith(".weight"):
            module = key[: -len(".weight")]
            out[f"{module}.running_mean"] = torch.zeros_like(tensor)
            out[f"{module}.running_var"] = torch.full_like(tensor, 1.0 - bn_eps)
    return Weights(out, DETECTRON, source, dropped)


def _detectron_key(name: str) -> tuple[str, bool]:
    """Our key for a Detectron blob name, and whether it is a BN parameter."""
    if name in ("conv1_w", "conv1_b"):
        return f"{BODY}stem.conv1.{_PARAM[name[-1]]}", False
    if name in ("res_conv1_bn_s", "res_conv1_bn_b"):
        return f"{BODY}stem.bn1.{_PARAM[name[-1]]}", True
    match = _DETECTRON_BLOCK.match(name)
    if match is None:
        # kept as is so that loading reports it as unexpected
        return name, False
    stage, block, branch, bn, param = match.groups()
    conv, norm = _BRANCHES[branch]
    module = norm if bn else conv
    return f"{BODY}layer{int(stage) - 1}.{block}.{module}.{_PARAM[param]}", bool(bn)


_PARAM = {"w": "weight", "s": "weight", "b": "bias"}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
