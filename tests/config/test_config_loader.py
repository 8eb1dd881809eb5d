"""Config files, _BASE_ chains, overrides, and one clear error for every user mistake."""

import textwrap
from pathlib import Path

import pytest

from rcnn.config import ConfigError, load_config

CONFIG_DIR = Path(__file__).resolve().parents[2] / "models" / "configs"
ALL_CONFIGS = sorted(CONFIG_DIR.rglob("*.yaml"))

# maskrcnn-benchmark configs/e2e_faster_rcnn_R_50_FPN_1x.yaml as users have it
MRCNN_FASTER_R_50_FPN = """\
MODEL:
  META_ARCHITECTURE: "GeneralizedRCNN"
  WEIGHT: "catalog://ImageNetPretrained/MSRA/R-50"
  BACKBONE:
    CONV_BODY: "R-50-FPN"
  RESNETS:
    BACKBONE_OUT_CHANNELS: 256
  RPN:
    USE_FPN: True
    ANCHOR_STRIDE: (4, 8, 16, 32, 64)
    PRE_NMS_TOP_N_TRAIN: 2000
    PRE_NMS_TOP_N_TEST: 1000
    POST_NMS_TOP_N_TEST: 1000
    FPN_POST_NMS_TOP_N_TEST: 1000
  ROI_HEADS:
    USE_FPN: True
  ROI_BOX_HEAD:
    POOLER_RESOLUTION: 7
    POOLER_SCALES: (0.25, 0.125, 0.0625, 0.03125)
    POOLER_SAMPLING_RATIO: 2
    FEATURE_EXTRACTOR: "FPN2MLPFeatureExtractor"
    PREDICTOR: "FPNPredictor"
DATASETS:
  TRAIN: ("coco_2014_train", "coco_2014_valminusminival")
  TEST: ("coco_2014_minival",)
DATALOADER:
  SIZE_DIVISIBILITY: 32
SOLVER:
  BASE_LR: 0.02
  WEIGHT_DECAY: 0.0001
  STEPS: (60000, 80000)
  MAX_ITER: 90000
"""

# maskrcnn-benchmark configs/e2e_mask_rcnn_R_50_FPN_1x.yaml, edited the way users do:
# a device, fp16 through DTYPE, a test batch, and the older BACKBONE.OUT_CHANNELS spelling
MRCNN_MASK_R_50_FPN_USER = """\
MODEL:
  META_ARCHITECTURE: "GeneralizedRCNN"
  WEIGHT: "catalog://ImageNetPretrained/MSRA/R-50"
  DEVICE: "cuda"
  BACKBONE:
    CONV_BODY: "R-50-FPN"
    OUT_CHANNELS: 256
  RPN:
    USE_FPN: True
    ANCHOR_STRIDE: (4, 8, 16, 32, 64)
    PRE_NMS_TOP_N_TRAIN: 2000
    PRE_NMS_TOP_N_TEST: 1000
    POST_NMS_TOP_N_TEST: 1000
    FPN_POST_NMS_TOP_N_TEST: 1000
  ROI_HEADS:
    USE_FPN: True
  ROI_BOX_HEAD:
    POOLER_RESOLUTION: 7
    POOLER_SCALES: (0.25, 0.125, 0.0625, 0.03125)
    POOLER_SAMPLING_RATIO: 2
    FEATURE_EXTRACTOR: "FPN2MLPFeatureExtractor"
    PREDICTOR: "FPNPredictor"
  ROI_MASK_HEAD:
    POOLER_SCALES: (0.25, 0.125, 0.0625, 0.03125)
    FEATURE_EXTRACTOR: "MaskRCNNFPNFeatureExtractor"
    PREDICTOR: "MaskRCNNC4Predictor"
    POOLER_RESOLUTION: 14
    POOLER_SAMPLING_RATIO: 2
    RESOLUTION: 28
    SHARE_BOX_FEATURE_EXTRACTOR: False
  MASK_ON: True
INPUT:
  MIN_SIZE_TRAIN: 800
DATASETS:
  TRAIN: ("coco_2014_train", "coco_2014_valminusminival")
  TEST: ("coco_2014_minival",)
DATALOADER:
  SIZE_DIVISIBILITY: 32
SOLVER:
  BASE_LR: 0.02
  WEIGHT_DECAY: 0.0001
  STEPS: (60000, 80000)
  MAX_ITER: 90000
  TEST_PERIOD: 2500
TEST:
  IMS_PER_BATCH: 16
DTYPE: "float16"
OUTPUT_DIR: "/tmp/mask_r50"
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert cfg.is_frozen()
    assert cfg.MODEL.RPN.USE_FPN and cfg.MODEL.ROI_HEADS.USE_FPN
    assert cfg.DATALOADER.SIZE_DIVISIBILITY == 32


def test_shipped_configs_cover_the_benchmark_models():
    names = {p.name for p in ALL_CONFIGS}
    for expected in (
        "e2e_faster_rcnn_R_50_FPN_1x.yaml",
        "e2e_faster_rcnn_R_101_FPN_1x.yaml",
        "e2e_faster_rcnn_X_101_32x8d_FPN_1x.yaml",
        "e2e_mask_rcnn_R_50_FPN_1x.yaml",
        "e2e_mask_rcnn_R_101_FPN_1x.yaml",
        "faster_rcnn_R_18_FPN_quick.yaml",
        "mask_rcnn_R_18_FPN_quick.yaml",
    ):
        assert expected in names


def test_shipped_resnext_config_values():
    cfg = load_config(CONFIG_DIR / "e2e_faster_rcnn_X_101_32x8d_FPN_1x.yaml")
    assert cfg.MODEL.WEIGHT == "catalog://ImageNetPretrained/FAIR/20171220/X-101-32x8d"
    assert (cfg.MODEL.RESNETS.NUM_GROUPS, cfg.MODEL.RESNETS.WIDTH_PER_GROUP) == (32, 8)
    assert cfg.MODEL.RESNETS.STRIDE_IN_1X1 is False
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.IMS_PER_BATCH) == (0.01, 8)
    assert cfg.SOLVER.STEPS == (120000, 160000) and cfg.SOLVER.MAX_ITER == 180000


def test_maskrcnn_benchmark_faster_config_loads_unchanged(tmp_path):
    cfg = load_config(write(tmp_path, "e2e_faster_rcnn_R_50_FPN_1x.yaml", MRCNN_FASTER_R_50_FPN))
    assert cfg.MODEL.WEIGHT == "catalog://ImageNetPretrained/MSRA/R-50"
    assert cfg.MODEL.BACKBONE.CONV_BODY == "R-50-FPN"
    assert cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS == 256
    assert cfg.MODEL.RPN.ANCHOR_STRIDE == (4, 8, 16, 32, 64)
    assert cfg.MODEL.ROI_BOX_HEAD.POOLER_SCALES == (0.25, 0.125, 0.0625, 0.03125)
    assert cfg.DATASETS.TRAIN == ("coco_2014_train", "coco_2014_valminusminival")
    assert cfg.DATASETS.TEST == ("coco_2014_minival",)
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.WEIGHT_DECAY) == (0.02, 0.0001)
    assert cfg.SOLVER.STEPS == (60000, 80000) and cfg.SOLVER.MAX_ITER == 90000
    assert cfg.SOLVER.IMS_PER_BATCH == 16
    # untouched keys keep maskrcnn-benchmark's defaults; DEVICE is the project's "auto"
    assert cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES == 81
    assert cfg.MODEL.DEVICE == "auto"
    assert cfg.MODEL.PRECISION == "fp32"


def test_shipped_faster_config_equals_maskrcnn_benchmark_apart_from_datasets(tmp_path):
    theirs = load_config(write(tmp_path, "theirs.yaml", MRCNN_FASTER_R_50_FPN)).clone()
    ours = load_config(CONFIG_DIR / "e2e_faster_rcnn_R_50_FPN_1x.yaml").clone()
    for cfg in (theirs, ours):
        cfg.defrost()
        cfg.DATASETS.TRAIN = cfg.DATASETS.TEST = ()
    assert theirs == ours


def test_user_edited_maskrcnn_benchmark_config(tmp_path):
    cfg = load_config(write(tmp_path, "mask.yaml", MRCNN_MASK_R_50_FPN_USER))
    assert cfg.MODEL.DEVICE == "cuda"
    assert cfg.MODEL.MASK_ON is True
    assert cfg.MODEL.ROI_MASK_HEAD.RESOLUTION == 28
    assert cfg.MODEL.ROI_MASK_HEAD.SHARE_BOX_FEATURE_EXTRACTOR is False
    assert cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS == 256
    assert cfg.INPUT.MIN_SIZE_TRAIN == (800,)
    assert cfg.SOLVER.TEST_PERIOD == 2500
    assert cfg.TEST.IMS_PER_BATCH == 16
    assert cfg.OUTPUT_DIR == "/tmp/mask_r50"
    assert cfg.DTYPE == "float16" and cfg.MODEL.PRECISION == "fp16"


def test_explicit_precision_wins_over_dtype(tmp_path):
    path = write(tmp_path, "a.yaml", 'DTYPE: "float16"\nMODEL:\n  PRECISION: "bf16"\n')
    assert load_config(path).MODEL.PRECISION == "bf16"
    assert load_config(path, ["MODEL.PRECISION", "fp32"]).MODEL.PRECISION == "fp32"
    plain = write(tmp_path, "b.yaml", 'DTYPE: "float16"\n')
    assert load_config(plain, ["MODEL.PRECISION", "tf32"]).MODEL.PRECISION == "tf32"


def test_overrides_as_in_maskrcnn_benchmark_tools():
    cfg = load_config(
        CONFIG_DIR / "e2e_mask_rcnn_R_50_FPN_1x.yaml",
        [
            "MODEL.DEVICE", "mlu",
            "TEST.IMS_PER_BATCH", "32",
            "SOLVER.BASE_LR", "0.01",
            "INPUT.MIN_SIZE_TRAIN", "(640, 672, 704)",
            "MODEL.MASK_ON", "False",
            "DATASETS.TRAIN", "('coco_2017_val',)",
            "OUTPUT_DIR", "out/run1",
        ],
    )  # fmt: skip
    assert cfg.MODEL.DEVICE == "mlu"
    assert cfg.TEST.IMS_PER_BATCH == 32
    assert cfg.SOLVER.BASE_LR == 0.01
    assert cfg.INPUT.MIN_SIZE_TRAIN == (640, 672, 704)
    assert cfg.MODEL.MASK_ON is False
    assert cfg.DATASETS.TRAIN == ("coco_2017_val",)
    assert cfg.OUTPUT_DIR == "out/run1"


def test_override_coercions():
    cfg = load_config(
        None,
        ["SOLVER.BASE_LR", "1", "DATASETS.TEST", "synthetic_val", "INPUT.PIXEL_STD", "(2, 2, 2)",
         "MODEL.DEVICE", "0", "MODEL.WEIGHT", "'quoted.pth'"],
    )  # fmt: skip
    assert cfg.SOLVER.BASE_LR == 1.0 and isinstance(cfg.SOLVER.BASE_LR, float)
    assert cfg.DATASETS.TEST == ("synthetic_val",)
    assert cfg.INPUT.PIXEL_STD == [2, 2, 2]
    assert cfg.MODEL.DEVICE == "0"
    assert cfg.MODEL.WEIGHT == "quoted.pth"


def test_base_chain_is_followed_in_order(tmp_path):
    write(tmp_path, "root.yaml", "SOLVER:\n  MAX_ITER: 10\n  BASE_LR: 0.5\n")
    write(tmp_path, "mid/mid.yaml", '_BASE_: "../root.yaml"\nSOLVER:\n  MAX_ITER: 20\n')
    leaf = write(tmp_path, "mid/leaf/leaf.yaml", '_BASE_: "../mid.yaml"\nSEED: 7\n')
    cfg = load_config(leaf, ["SOLVER.BASE_LR", "0.25"])
    assert (cfg.SOLVER.MAX_ITER, cfg.SOLVER.BASE_LR, cfg.SEED) == (20, 0.25, 7)


def test_quick_mask_config_builds_on_quick_faster():
    faster = load_config(CONFIG_DIR / "quick" / "faster_rcnn_R_18_FPN_quick.yaml")
    mask = load_config(CONFIG_DIR / "quick" / "mask_rcnn_R_18_FPN_quick.yaml")
    assert faster.MODEL.BACKBONE.CONV_BODY == mask.MODEL.BACKBONE.CONV_BODY == "R-18-FPN"
    assert mask.MODEL.MASK_ON and not faster.MODEL.MASK_ON
    assert mask.MODEL.ROI_BOX_HEAD.NUM_CLASSES == 4
    assert mask.INPUT.MIN_SIZE_TRAIN == (320,) and mask.INPUT.MAX_SIZE_TRAIN == 512
    assert mask.DATASETS.TRAIN == ("synthetic_train",)
    assert mask.MODEL.RESNETS.RES2_OUT_CHANNELS == 64


def test_loaded_config_is_frozen():
    cfg = load_config(None)
    with pytest.raises(AttributeError):
        cfg.SEED = 3


# ------------------------------------------------------------------------------- errors


def error_of(*args) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(*args)
    return str(info.value)


def test_unknown_key_names_file_key_and_close_match(tmp_path):
    path = write(tmp_path, "x.yaml", "MODEL:\n  RPN:\n    FG_IOU_THRESHOLDD: 0.6\n")
    message = error_of(path)
    assert message.startswith(f"{path}: unknown key MODEL.RPN.FG_IOU_THRESHOLDD")
    assert "did you mean MODEL.RPN.FG_IOU_THRESHOLD?" in message


def test_unknown_section(tmp_path):
    path = write(tmp_path, "x.yaml", "MODEL:\n  RPNN:\n    NMS_THRESH: 0.6\n")
    assert error_of(path).startswith(f"{path}: unknown key MODEL.RPNN")


def test_unknown_override_key():
    message = error_of(None, ["MODEL.RPN.NMS_TRESH", "0.5"])
    assert "command line overrides: unknown key MODEL.RPN.NMS_TRESH" in message
    assert "MODEL.RPN.NMS_THRESH" in message


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("SOLVER:\n  MAX_ITER: 1.5\n", "SOLVER.MAX_ITER"),
        ("MODEL:\n  MASK_ON: 1\n", "MODEL.MASK_ON"),
        ("MODEL:\n  WEIGHT: 3\n", "MODEL.WEIGHT"),
        ("INPUT:\n  PIXEL_MEAN: abc\n", "INPUT.PIXEL_MEAN"),
        ("SOLVER:\n  BASE_LR: [0.1]\n", "SOLVER.BASE_LR"),
        ("MODEL:\n  RPN: 3\n", "MODEL.RPN"),
        ("SOLVER:\n  STEPS:\n    A: 1\n", "SOLVER.STEPS"),
    ],
)
def test_wrong_type_names_file_and_key(tmp_path, yaml_text, key):
    path = write(tmp_path, "bad.yaml", yaml_text)
    message = error_of(path)
    assert message.startswith(f"{path}: {key} ")


def test_wrong_override_type():
    assert error_of(None, ["TEST.IMS_PER_BATCH", "many"]).startswith(
        "command line overrides: TEST.IMS_PER_BATCH expects int"
    )


def test_value_outside_choices(tmp_path):
    path = write(tmp_path, "p.yaml", 'MODEL:\n  PRECISION: "fp8"\n')
    message = error_of(path)
    assert message.startswith(f"{path}: MODEL.PRECISION must be one of fp32, tf32, fp16, bf16")
    assert "ON_BAD_DATA" in error_of(None, ["DATASETS.ON_BAD_DATA", "ignore"])


def test_odd_number_of_override_tokens():
    message = error_of(None, ["MODEL.DEVICE", "cpu", "TEST.IMS_PER_BATCH"])
    assert "command line overrides" in message and "TEST.IMS_PER_BATCH has no value" in message


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.yaml")
    assert error_of(path) == f"{path}: config file not found"


def test_missing_base(tmp_path):
    path = write(tmp_path, "child.yaml", '_BASE_: "gone.yaml"\n')
    message = error_of(path)
    assert message.startswith(f"{path}: _BASE_ 'gone.yaml' not found")
    assert str(tmp_path / "gone.yaml") in message


def test_base_cycle(tmp_path):
    a = write(tmp_path, "a.yaml", '_BASE_: "b.yaml"\n')
    write(tmp_path, "b.yaml", '_BASE_: "a.yaml"\n')
    message = error_of(a)
    assert "_BASE_ cycle" in message and "a.yaml -> " in message and "b.yaml" in message


def test_self_base(tmp_path):
    a = write(tmp_path, "a.yaml", '_BASE_: "a.yaml"\n')
    assert "_BASE_ cycle" in error_of(a)


def test_unparsable_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "broken.yaml", "MODEL:\n  RPN: [1, 2\nSOLVER:\n")
    message = error_of(path)
    assert message.startswith(f"{path}: not valid YAML at line")


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = write(tmp_path, "list.yaml", "- MODEL\n- SOLVER\n")
    assert error_of(path).startswith(f"{path}: expected a mapping")


def test_error_in_a_base_names_the_base(tmp_path):
    base = write(tmp_path, "base.yaml", "SOLVER:\n  MAX_ITERS: 5\n")
    child = write(tmp_path, "child.yaml", '_BASE_: "base.yaml"\n')
    assert error_of(child).startswith(f"{base}: unknown key SOLVER.MAX_ITERS")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(write(tmp_path, "empty.yaml", "")) == load_config(None)


@pytest.mark.parametrize(
    "name", ["e2e_mask_rcnn_R_50_FPN_1x.yaml", "quick/mask_rcnn_R_18_FPN_quick.yaml"]
)
def test_dumped_config_loads_back_equal(tmp_path, name):
    cfg = load_config(CONFIG_DIR / name, ["MODEL.PRECISION", "bf16", "SEED", "11"])
    path = write(tmp_path, "merged.yaml", cfg.dump())
    assert load_config(path) == cfg
