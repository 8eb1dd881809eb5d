"""What counts as the same workload, decided once: the FLOP cache, the report's cells and the
records all key on `identity`.

Two runs do the same work when their configs agree on every key that changes the work (not on
run-specific keys such as OUTPUT_DIR), on the data (its fingerprint), on the weights' content,
on the input size and on the execution mode (train or infer, compiled, channels-last).
"""

from __future__ import annotations

import hashlib
import json

from yacs.config import CfgNode

# keys that name where or how long a run goes, not what each step computes
RUN_SPECIFIC = (
    "OUTPUT_DIR",
    "MODEL.DEVICE",
    "MODEL.WEIGHT",  # its content is `weights`
    "DATASETS.TRAIN",  # the data's fingerprint is `data`
    "DATASETS.TEST",
    "SOLVER.MAX_ITER",
    "SOLVER.TEST_PERIOD",
    "SOLVER.TARGET_BBOX_AP",
    "SOLVER.CHECKPOINT_PERIOD",
    "SOLVER.IMS_PER_BATCH",  # the global batch: cards x batch per card, each recorded apart
    "TEST.IMS_PER_BATCH",
    "SEED",  # runs over seeds are one workload: the report gives their spread
)


def work_config_hash(cfg: CfgNode) -> str:
    """SHA-1 of the config without its run-specific keys."""
    work = cfg.clone()
    work.defrost()
    for dotted in RUN_SPECIFIC:
        *path, leaf = dotted.split(".")
        node = work
        for part in path:
            node = node[part]
        node.pop(leaf, None)
    return hashlib.sha1(work.dump().encode()).hexdigest()


def identity(
    config: str | None,
    mode: str | None,
    size: tuple[object, object],
    data: str | None,
    fingerprint: str | None,
    weights: str | None,
    compiled: bool = False,
    channels_last: bool = False,
) -> dict[str, str]:
    """The workload's parts as text; a part nobody knows (an old record) is "-"."""
    flags = [name for name, on in (("compile", compiled), ("channels_last", channels_last)) if on]
    return {
        "config": (config or "-")[:12],
        "mode": mode or "-",
        "size": "x".join("-" if v is None else str(v) for v in size),
        "data": f"{data or '-'}" + (f" #{str(fingerprint)[:8]}" if fingerprint else ""),
        "weights": weights or "-",
        "execution": ",".join(flags) or "eager",
    }


def key(ident: dict[str, str], *parts: str) -> str:
    """A short stable key of `parts` of an identity (all of them when none are named)."""
    chosen = {p: ident[p] for p in (parts or sorted(ident))}
    return hashlib.sha1(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:16]
