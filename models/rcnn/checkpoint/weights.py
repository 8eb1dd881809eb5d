"""``MODEL.WEIGHT`` -> a local file -> weights in the model. Nothing is ever downloaded.

``catalog://ImageNetPretrained/MSRA/R-50`` and ``http(s)://.../R-50.pkl`` name a file the user
places in ``$CHECKPOINT_DIR`` (default ``./checkpoints``) under its base name: ``R-50.pkl``
(catalog names are Detectron ``.pkl`` files; a ``.pth`` of the same name is taken too).
"""

import os
from urllib.parse import urlparse

from torch import nn

from rcnn.checkpoint.errors import CheckpointError
from rcnn.checkpoint.formats import BODY, MASKRCNN, read_weights
from rcnn.checkpoint.matching import LoadReport, StateDict, load_state_dict_into

CATALOG = "catalog://"


def checkpoint_dir() -> str:
    """Where named weights are looked up: ``$CHECKPOINT_DIR`` or ``./checkpoints``."""
    return os.environ.get("CHECKPOINT_DIR") or "checkpoints"


def resolve_weight(spec: str) -> str | None:
    """The local file ``spec`` stands for, or None for ``""``; CheckpointError if it is absent."""
    if not spec:
        return None
    if spec.startswith(CATALOG):
        stem = spec[len(CATALOG) :].rstrip("/").rsplit("/", 1)[-1]
        candidates = [f"{stem}.pkl", f"{stem}.pth"]
    elif spec.startswith(("http://", "https://")):
        candidates = [os.path.basename(urlparse(spec).path)]
    else:
        path = os.path.expanduser(spec)
        if not os.path.isfile(path):
            raise CheckpointError(f"{spec}: weight file not found (MODEL.WEIGHT)")
        return path
    folder = checkpoint_dir()
    for name in candidates:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise CheckpointError(
        f"{spec}: downloads are disabled in this project; place {candidates[0]} in "
        f"{os.path.abspath(folder)} (set CHECKPOINT_DIR to use another folder), "
        "or set MODEL.WEIGHT to a local file"
    )


def load_weights(
    spec: str, model: nn.Module | StateDict, strict: bool = True, bn_eps: float = 0.0
) -> LoadReport | None:
    """Load ``MODEL.WEIGHT`` into ``model``; None when there is nothing to load.

    A detector checkpoint must match the whole model. An ImageNet backbone (Detectron ``.pkl``,
    torchvision ``.pth``) must match ``backbone.body`` only; the rest stays as initialised.
    ``bn_eps``: the eps of the model's frozen BN (see ``rcnn.checkpoint.formats``).
    """
    path = resolve_weight(spec)
    if path is None:
        return None
    weights = read_weights(path, bn_eps)
    scope = "" if weights.kind == MASKRCNN else BODY
    return load_state_dict_into(model, weights.state, strict=strict, source=path, scope=scope)
