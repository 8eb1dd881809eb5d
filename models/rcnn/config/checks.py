"""What a loaded config must satisfy beyond key names and types: value ranges, and honesty.

Honesty: a maskrcnn-benchmark key this project loads but does not implement may keep its
default; set to anything else it would be ignored in silence, so loading refuses it by name.
The same goes for backbone bodies that are not built (C4/C5, DCN).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

# maskrcnn-benchmark keys that load but drive nothing here (RetinaNet, FBNet, DCN, test-time
# augmentation, the Xconv box head, expected-results checks, apex verbosity, catalog path).
UNIMPLEMENTED_KEYS: tuple[str, ...] = (
    "MODEL.RETINANET_ON",
    "MODEL.KEYPOINT_ON",
    "MODEL.FPN.USE_RELU",
    "MODEL.ROI_BOX_HEAD.USE_GN",
    "MODEL.ROI_BOX_HEAD.CONV_HEAD_DIM",
    "MODEL.ROI_BOX_HEAD.NUM_STACKED_CONVS",
    "MODEL.RESNETS.STAGE_WITH_DCN",
    "MODEL.RESNETS.WITH_MODULATED_DCN",
    "MODEL.RESNETS.DEFORMABLE_GROUPS",
    *(
        f"MODEL.RETINANET.{k}"
        for k in [
            "ANCHOR_STRIDES",
            "OCTAVE",
            "SCALES_PER_OCTAVE",
            "USE_C5",
            "NUM_CONVS",
            "BBOX_REG_WEIGHT",
            "BBOX_REG_BETA",
            "PRE_NMS_TOP_N",
            "LOSS_ALPHA",
            "LOSS_GAMMA",
            "PRIOR_PROB",
            "INFERENCE_TH",
            "NMS_TH",
        ]
    ),
    *(
        f"MODEL.FBNET.{k}"
        for k in [
            "ARCH",
            "ARCH_DEF",
            "BN_TYPE",
            "SCALE_FACTOR",
            "WIDTH_DIVISOR",
            "DW_CONV_SKIP_BN",
            "DW_CONV_SKIP_RELU",
            "DET_HEAD_LAST_SCALE",
            "DET_HEAD_BLOCKS",
            "DET_HEAD_STRIDE",
            "KPTS_HEAD_LAST_SCALE",
            "KPTS_HEAD_BLOCKS",
            "KPTS_HEAD_STRIDE",
            "MASK_HEAD_LAST_SCALE",
            "MASK_HEAD_BLOCKS",
            "MASK_HEAD_STRIDE",
            "RPN_HEAD_BLOCKS",
            "RPN_BN_TYPE",
        ]
    ),
    "TEST.EXPECTED_RESULTS",
    "TEST.EXPECTED_RESULTS_SIGMA_TOL",
    "TEST.BBOX_AUG.ENABLED",
    "TEST.BBOX_AUG.H_FLIP",
    "TEST.BBOX_AUG.SCALES",
    "TEST.BBOX_AUG.MAX_SIZE",
    "TEST.BBOX_AUG.SCALE_H_FLIP",
    "PATHS_CATALOG",
    "AMP_VERBOSE",
)

# Backbone bodies the modeling registry builds (ResNeXt is R-101-FPN with groups set).
BUILT_BODIES: tuple[str, ...] = ("R-18-FPN", "R-34-FPN", "R-50-FPN", "R-101-FPN", "R-152-FPN")


def _positive_ints(value: Any) -> bool:
    items = value if isinstance(value, tuple | list) else (value,)
    return bool(items) and all(isinstance(v, int) and v > 0 for v in items)


def _at_least(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and v >= low


def _finite_in(low: float, high: float) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int | float) and math.isfinite(v) and low <= v <= high


def _halving_scales(value: Any) -> bool:
    """Pooler scales, finest first, each half the one before (one per FPN level, 1/4..1/32)."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    if not all(isinstance(v, (int, float)) and v > 0 for v in value):
        return False
    levels = [math.log2(v) for v in value]
    return all(math.isclose(a - b, 1.0) for a, b in zip(levels, levels[1:], strict=False))


# key -> (test, what it must be)
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "INPUT.MIN_SIZE_TRAIN": (_positive_ints, "one or more positive sizes in pixels"),
    "INPUT.MAX_SIZE_TRAIN": (_at_least(1), "a positive size in pixels"),
    "INPUT.MIN_SIZE_TEST": (_at_least(1), "a positive size in pixels"),
    "INPUT.MAX_SIZE_TEST": (_at_least(1), "a positive size in pixels"),
    "SOLVER.IMS_PER_BATCH": (_at_least(1), "at least 1 image"),
    "TEST.IMS_PER_BATCH": (_at_least(1), "at least 1 image"),
    "DATALOADER.NUM_WORKERS": (_at_least(0), "0 (load in the main process) or more"),
    "DATALOADER.SIZE_DIVISIBILITY": (_at_least(0), "0 or more"),
    "DATALOADER.SHAPE_BUCKETS": (_at_least(-1), "-1 (auto), 0 (off) or a count of long sides"),
    "SOLVER.MAX_ITER": (_at_least(1), "at least 1 iteration"),
    "SOLVER.CHECKPOINT_PERIOD": (_at_least(0), "0 (off) or more iterations"),
    "SOLVER.TEST_PERIOD": (_at_least(0), "0 (off) or more iterations"),
    "SOLVER.WARMUP_ITERS": (_at_least(0), "0 or more iterations"),
    "SOLVER.BASE_LR": (_finite_in(0.0, 1e3), "a finite learning rate, 0 or more"),
    "SOLVER.TARGET_BBOX_AP": (_finite_in(0.0, 1.0), "between 0.0 (off) and 1.0"),
    "MODEL.ROI_BOX_HEAD.NUM_CLASSES": (_at_least(2), "at least 2 (background + 1 class)"),
    "TEST.DETECTIONS_PER_IMG": (_at_least(1), "at least 1"),
    **{
        f"MODEL.{head}.POOLER_SCALES": (_halving_scales, "positive scales, each half the last")
        for head in ("ROI_BOX_HEAD", "ROI_MASK_HEAD")
    },
}


def config_problem(
    origins: dict[str, str], lookup: Callable[[str], Any], defaults: Callable[[str], Any]
) -> str:
    """The first thing wrong with a merged config, as "source: key ...", or "" when none.

    `origins` maps keys set by a file or override to where; `lookup`/`defaults` read a key's
    value in the config and in the defaults.
    """
    for key in UNIMPLEMENTED_KEYS:
        if key in origins and lookup(key) != defaults(key):
            return (
                f"{origins[key]}: {key} is not implemented in this project and would be ignored "
                f"(set {lookup(key)!r}, default {defaults(key)!r}); remove it or use the default"
            )
    body = lookup("MODEL.BACKBONE.CONV_BODY")
    if "MODEL.BACKBONE.CONV_BODY" in origins and body not in BUILT_BODIES:
        return (
            f"{origins['MODEL.BACKBONE.CONV_BODY']}: MODEL.BACKBONE.CONV_BODY {body!r} is not "
            f"built by this project (C4/C5 bodies are not); use one of {', '.join(BUILT_BODIES)}"
        )
    for key, (ok, must) in RANGES.items():
        value = lookup(key)
        if not ok(value):
            return f"{origins.get(key, 'defaults')}: {key} must be {must}; got {value!r}"
    return ""
