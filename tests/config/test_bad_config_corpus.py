"""Issue 14's corpus, config side: values out of range, keys this project does not implement,
and bodies it does not build are refused at load with one line naming the key and its source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from rcnn.config import ConfigError, get_default_config, load_config
from rcnn.config.checks import UNIMPLEMENTED_KEYS
from rcnn.layers import dispatch

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "models/configs/quick/faster_rcnn_R_18_FPN_quick.yaml"
OVERRIDES = "command line overrides"


def load_literal(text: str) -> object:
    return ast.literal_eval(text)


def _message(path: Path | None, opts: list[str]) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(path, opts)
    message = str(err.value)
    assert "\n" not in message
    return message


def _other_value(default: object) -> str:
    """A value of the default's type that differs from it, as a command-line literal."""
    if isinstance(default, bool):
        return str(not default)
    if isinstance(default, int | float):
        return str(default + 1)
    if isinstance(default, str):
        return repr(default + "_other")
    if default:  # a non-empty tuple or list: change its first item
        first = default[0]
        changed = (not first) if isinstance(first, bool) else first + 1
        return repr((changed, *default[1:]))
    return "(1,)"


def _default(key: str) -> object:
    node = get_default_config()
    for part in key.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize("key", UNIMPLEMENTED_KEYS)
def test_unimplemented_key_set_is_refused(key: str) -> None:
    message = _message(QUICK, [key, _other_value(_default(key))])
    assert message.startswith(f"{OVERRIDES}: {key} is not implemented in this project")
    assert "would be ignored" in message


def test_unimplemented_key_at_its_default_loads() -> None:
    """Documented acceptance: maskrcnn-benchmark configs spell out defaults; those load."""
    cfg = load_config(QUICK, ["MODEL.RESNETS.STAGE_WITH_DCN", "(False, False, False, False)"])
    assert cfg.MODEL.RESNETS.STAGE_WITH_DCN == (False, False, False, False)


def test_unimplemented_key_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "dcn.yaml"
    path.write_text(
        f'_BASE_: "{QUICK}"\nMODEL:\n  RESNETS:\n    STAGE_WITH_DCN: (False, True, True, True)\n'
    )
    message = _message(path, [])
    assert message.startswith(f"{path}: MODEL.RESNETS.STAGE_WITH_DCN is not implemented")


@pytest.mark.parametrize("body", ["R-50-C4", "R-101-C4", "R-50-C5", "R-50-FPN-RETINANET"])
def test_unbuilt_body_is_refused_at_load(tmp_path: Path, body: str) -> None:
    path = tmp_path / "c4.yaml"
    path.write_text(f'MODEL:\n  BACKBONE:\n    CONV_BODY: "{body}"\n')
    message = _message(path, [])
    assert message.startswith(f"{path}: MODEL.BACKBONE.CONV_BODY '{body}' is not built")
    assert "R-50-FPN" in message


RANGES = [
    ("INPUT.MIN_SIZE_TRAIN", "(0,)", "one or more positive sizes"),
    ("INPUT.MIN_SIZE_TRAIN", "()", "one or more positive sizes"),
    ("INPUT.MIN_SIZE_TRAIN", "(640, -1)", "one or more positive sizes"),
    ("INPUT.MAX_SIZE_TRAIN", "0", "a positive size"),
    ("INPUT.MIN_SIZE_TEST", "-800", "a positive size"),
    ("INPUT.MAX_SIZE_TEST", "0", "a positive size"),
    ("SOLVER.IMS_PER_BATCH", "0", "at least 1 image"),
    ("TEST.IMS_PER_BATCH", "-2", "at least 1 image"),
    ("DATALOADER.NUM_WORKERS", "-1", "0 (load in the main process) or more"),
    ("DATALOADER.SIZE_DIVISIBILITY", "-32", "0 or more"),
    ("SOLVER.MAX_ITER", "0", "at least 1 iteration"),
    ("SOLVER.MAX_ITER", "-10", "at least 1 iteration"),
    ("SOLVER.CHECKPOINT_PERIOD", "-1", "0 (off) or more"),
    ("SOLVER.TEST_PERIOD", "-5", "0 (off) or more"),
    ("SOLVER.WARMUP_ITERS", "-1", "0 or more"),
    ("SOLVER.BASE_LR", "-0.01", "a finite learning rate"),
    ("SOLVER.BASE_LR", "1e309", "a finite learning rate"),
    ("SOLVER.TARGET_BBOX_AP", "1.5", "between 0.0 (off) and 1.0"),
    ("MODEL.ROI_BOX_HEAD.NUM_CLASSES", "1", "at least 2"),
    ("TEST.DETECTIONS_PER_IMG", "0", "at least 1"),
    ("MODEL.ROI_BOX_HEAD.POOLER_SCALES", "(0.25, 0.0625)", "positive scales, each half the last"),
    ("MODEL.ROI_MASK_HEAD.POOLER_SCALES", "()", "positive scales, each half the last"),
    ("MODEL.ROI_MASK_HEAD.POOLER_SCALES", "(0.25, 0.0)", "positive scales, each half the last"),
]


@pytest.mark.parametrize(("key", "value", "must"), RANGES, ids=[f"{k}={v}" for k, v, _ in RANGES])
def test_value_out_of_range_is_refused(key: str, value: str, must: str) -> None:
    message = _message(QUICK, [key, value])
    assert message.startswith(f"{OVERRIDES}: {key} must be {must}")
    assert message.endswith(f"; got {load_literal(value)!r}")


@pytest.mark.parametrize(
    ("opts", "needle"),
    [
        (["DATASETS.BOXES_OUTSIDE_IMAGE", "drop"], "DATASETS.BOXES_OUTSIDE_IMAGE must be one of"),
        (["DATASETS.ALLOW_ABSOLUTE_PATHS", "yes"], "DATASETS.ALLOW_ABSOLUTE_PATHS expects bool"),
        (["SOLVER.MAX_ITER", "1e3"], "SOLVER.MAX_ITER expects int"),
        (["SOLVER.IMS_PER_BATCH"], "key SOLVER.IMS_PER_BATCH has no value"),
    ],
)
def test_data_policy_and_type_mistakes(opts: list[str], needle: str) -> None:
    assert needle in _message(QUICK, opts)


@pytest.mark.parametrize("value", ["bogus", "cuda", "1"])
def test_rcnn_ops_value_is_checked(monkeypatch, value: str) -> None:
    monkeypatch.setenv(dispatch.ENV, value)
    with pytest.raises(ConfigError) as err:
        dispatch.mode()
    assert str(err.value) == (f"environment: RCNN_OPS={value!r} is not one of auto, kernel, native")
