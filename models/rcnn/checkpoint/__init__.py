"""Checkpoints: maskrcnn-benchmark .pth, Detectron .pkl and torchvision ImageNet weights; resume."""

from rcnn.checkpoint.errors import CheckpointError
from rcnn.checkpoint.formats import (
    Weights,
    from_detectron,
    from_torchvision,
    read_torch_file,
    read_weights,
)
from rcnn.checkpoint.matching import LoadReport, load_state_dict_into, strip_module_prefix
from rcnn.checkpoint.rng import rng_state, set_rng_state
from rcnn.checkpoint.safe_pickle import load_restricted_pickle
from rcnn.checkpoint.training import (
    Resumed,
    last_checkpoint,
    load_checkpoint,
    remove_stale_temp_files,
    save_checkpoint,
)
from rcnn.checkpoint.weights import checkpoint_dir, load_weights, resolve_weight

__all__ = [
    "CheckpointError",
    "LoadReport",
    "Resumed",
    "Weights",
    "checkpoint_dir",
    "from_detectron",
    "from_torchvision",
    "last_checkpoint",
    "load_checkpoint",
    "load_restricted_pickle",
    "load_state_dict_into",
    "load_weights",
    "read_torch_file",
    "read_weights",
    "remove_stale_temp_files",
    "resolve_weight",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "strip_module_prefix",
]
