"""The defaults are a superset of maskrcnn-benchmark's, with its values."""

import pytest

from rcnn.config import all_keys, get_default_config

# maskrcnn-benchmark maskrcnn_benchmark/config/defaults.py: key -> default value
MASKRCNN_BENCHMARK_DEFAULTS = {
    "MODEL.RPN_ONLY": False,
    "MODEL.MASK_ON": False,
    "MODEL.RETINANET_ON": False,
    "MODEL.KEYPOINT_ON": False,
    "MODEL.META_ARCHITECTURE": "GeneralizedRCNN",
    "MODEL.CLS_AGNOSTIC_BBOX_REG": False,
    "MODEL.WEIGHT": "",
    "INPUT.MIN_SIZE_TRAIN": (800,),
    "INPUT.MAX_SIZE_TRAIN": 1333,
    "INPUT.MIN_SIZE_TEST": 800,
    "INPUT.MAX_SIZE_TEST": 1333,
    "INPUT.PIXEL_MEAN": [102.9801, 115.9465, 122.7717],
    "INPUT.PIXEL_STD": [1.0, 1.0, 1.0],
    "INPUT.TO_BGR255": True,
    "INPUT.BRIGHTNESS": 0.0,
    "INPUT.HUE": 0.0,
    "INPUT.HORIZONTAL_FLIP_PROB_TRAIN": 0.5,
    "INPUT.VERTICAL_FLIP_PROB_TRAIN": 0.0,
    "DATASETS.TRAIN": (),
    "DATASETS.TEST": (),
    "DATALOADER.NUM_WORKERS": 4,
    "DATALOADER.SIZE_DIVISIBILITY": 0,
    "DATALOADER.ASPECT_RATIO_GROUPING": True,
    "MODEL.BACKBONE.CONV_BODY": "R-50-C4",
    "MODEL.BACKBONE.FREEZE_CONV_BODY_AT": 2,
    "MODEL.FPN.USE_GN": False,
    "MODEL.FPN.USE_RELU": False,
    "MODEL.GROUP_NORM.DIM_PER_GP": -1,
    "MODEL.GROUP_NORM.NUM_GROUPS": 32,
    "MODEL.GROUP_NORM.EPSILON": 1e-5,
    "MODEL.RPN.USE_FPN": False,
    "MODEL.RPN.ANCHOR_SIZES": (32, 64, 128, 256, 512),
    "MODEL.RPN.ANCHOR_STRIDE": (16,),
    "MODEL.RPN.ASPECT_RATIOS": (0.5, 1.0, 2.0),
    "MODEL.RPN.STRADDLE_THRESH": 0,
    "MODEL.RPN.FG_IOU_THRESHOLD": 0.7,
    "MODEL.RPN.BG_IOU_THRESHOLD": 0.3,
    "MODEL.RPN.BATCH_SIZE_PER_IMAGE": 256,
    "MODEL.RPN.POSITIVE_FRACTION": 0.5,
    "MODEL.RPN.PRE_NMS_TOP_N_TRAIN": 12000,
    "MODEL.RPN.PRE_NMS_TOP_N_TEST": 6000,
    "MODEL.RPN.POST_NMS_TOP_N_TRAIN": 2000,
    "MODEL.RPN.POST_NMS_TOP_N_TEST": 1000,
    "MODEL.RPN.NMS_THRESH": 0.7,
    "MODEL.RPN.MIN_SIZE": 0,
    "MODEL.RPN.FPN_POST_NMS_TOP_N_TRAIN": 2000,
    "MODEL.RPN.FPN_POST_NMS_TOP_N_TEST": 2000,
    "MODEL.RPN.FPN_POST_NMS_PER_BATCH": True,
    "MODEL.RPN.RPN_HEAD": "SingleConvRPNHead",
    "MODEL.ROI_HEADS.USE_FPN": False,
    "MODEL.ROI_HEADS.FG_IOU_THRESHOLD": 0.5,
    "MODEL.ROI_HEADS.BG_IOU_THRESHOLD": 0.5,
    "MODEL.ROI_HEADS.BBOX_REG_WEIGHTS": (10.0, 10.0, 5.0, 5.0),
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": 512,
    "MODEL.ROI_HEADS.POSITIVE_FRACTION": 0.25,
    "MODEL.ROI_HEADS.SCORE_THRESH": 0.05,
    "MODEL.ROI_HEADS.NMS": 0.5,
    "MODEL.ROI_HEADS.DETECTIONS_PER_IMG": 100,
    "MODEL.ROI_BOX_HEAD.FEATURE_EXTRACTOR": "ResNet50Conv5ROIFeatureExtractor",
    "MODEL.ROI_BOX_HEAD.PREDICTOR": "FastRCNNPredictor",
    "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION": 14,
    "MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO": 0,
    "MODEL.ROI_BOX_HEAD.POOLER_SCALES": (0.0625,),
    "MODEL.ROI_BOX_HEAD.NUM_CLASSES": 81,
    "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM": 1024,
    "MODEL.ROI_BOX_HEAD.CONV_HEAD_DIM": 256,
    "MODEL.ROI_BOX_HEAD.NUM_STACKED_CONVS": 4,
    "MODEL.ROI_MASK_HEAD.PREDICTOR": "MaskRCNNC4Predictor",
    "MODEL.ROI_MASK_HEAD.CONV_LAYERS": (256, 256, 256, 256),
    "MODEL.ROI_MASK_HEAD.RESOLUTION": 14,
    "MODEL.ROI_MASK_HEAD.SHARE_BOX_FEATURE_EXTRACTOR": True,
    "MODEL.ROI_MASK_HEAD.POSTPROCESS_MASKS": False,
    "MODEL.ROI_MASK_HEAD.POSTPROCESS_MASKS_THRESHOLD": 0.5,
    "MODEL.ROI_KEYPOINT_HEAD.NUM_CLASSES": 17,
    "MODEL.RESNETS.NUM_GROUPS": 1,
    "MODEL.RESNETS.WIDTH_PER_GROUP": 64,
    "MODEL.RESNETS.STRIDE_IN_1X1": True,
    "MODEL.RESNETS.TRANS_FUNC": "BottleneckWithFixedBatchNorm",
    "MODEL.RESNETS.STEM_FUNC": "StemWithFixedBatchNorm",
    "MODEL.RESNETS.RES5_DILATION": 1,
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS": 1024,
    "MODEL.RESNETS.RES2_OUT_CHANNELS": 256,
    "MODEL.RESNETS.STEM_OUT_CHANNELS": 64,
    "MODEL.RESNETS.STAGE_WITH_DCN": (False, False, False, False),
    "MODEL.RESNETS.WITH_MODULATED_DCN": False,
    "MODEL.RESNETS.DEFORMABLE_GROUPS": 1,
    "MODEL.RETINANET.NUM_CLASSES": 81,
    "MODEL.RETINANET.BBOX_REG_BETA": 0.11,
    "SOLVER.MAX_ITER": 40000,
    "SOLVER.BASE_LR": 0.001,
    "SOLVER.BIAS_LR_FACTOR": 2,
    "SOLVER.MOMENTUM": 0.9,
    "SOLVER.WEIGHT_DECAY": 0.0005,
    "SOLVER.WEIGHT_DECAY_BIAS": 0,
    "SOLVER.GAMMA": 0.1,
    "SOLVER.STEPS": (30000,),
    "SOLVER.WARMUP_FACTOR": 1.0 / 3,
    "SOLVER.WARMUP_ITERS": 500,
    "SOLVER.WARMUP_METHOD": "linear",
    "SOLVER.CHECKPOINT_PERIOD": 2500,
    "SOLVER.TEST_PERIOD": 0,
    "SOLVER.IMS_PER_BATCH": 16,
    "TEST.EXPECTED_RESULTS": [],
    "TEST.EXPECTED_RESULTS_SIGMA_TOL": 4,
    "TEST.IMS_PER_BATCH": 8,
    "TEST.DETECTIONS_PER_IMG": 100,
    "TEST.BBOX_AUG.ENABLED": False,
    "TEST.BBOX_AUG.H_FLIP": False,
    "TEST.BBOX_AUG.SCALES": (),
    "TEST.BBOX_AUG.MAX_SIZE": 4000,
    "TEST.BBOX_AUG.SCALE_H_FLIP": False,
    "OUTPUT_DIR": ".",
    "DTYPE": "float32",
    "AMP_VERBOSE": False,
}

PROJECT_ADDITIONS = {
    "MODEL.DEVICE": "auto",
    "MODEL.PRECISION": "fp32",
    "DATASETS.ON_BAD_DATA": "reject",
    "MODEL.BFP.ON": False,
    "MODEL.BFP.IN_CHANNELS": 256,
    "MODEL.BFP.NUM_LEVELS": 5,
    "MODEL.BFP.REFINE_LEVEL": 2,
    "MODEL.BFP.REFINE_TYPE": "non_local",
    "MODEL.ROI_HEADS.SAMPLER": "random",
    "MODEL.ROI_HEADS.IOU_BALANCED.NUM_BINS": 3,
    "MODEL.ROI_HEADS.IOU_BALANCED.FLOOR_THR": -1.0,
    "MODEL.ROI_HEADS.IOU_BALANCED.FLOOR_FRACTION": 0.0,
    "MODEL.ROI_BOX_HEAD.LOSS": "smooth_l1",
    "MODEL.ROI_BOX_HEAD.BALANCED_L1.ALPHA": 0.5,
    "MODEL.ROI_BOX_HEAD.BALANCED_L1.GAMMA": 1.5,
    "MODEL.ROI_BOX_HEAD.BALANCED_L1.BETA": 1.0,
    "SOLVER.TARGET_BBOX_AP": 0.0,
    "SEED": 0,
}


def _get(cfg, key):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize("key", sorted(MASKRCNN_BENCHMARK_DEFAULTS))
def test_maskrcnn_benchmark_key_and_default(key):
    value = _get(get_default_config(), key)
    expected = MASKRCNN_BENCHMARK_DEFAULTS[key]
    assert type(value) is type(expected), key
    assert value == pytest.approx(expected) if isinstance(expected, float) else value == expected


def test_project_additions_and_their_defaults():
    cfg = get_default_config()
    for key, expected in PROJECT_ADDITIONS.items():
        assert _get(cfg, key) == expected, key
        assert type(_get(cfg, key)) is type(expected), key


def test_paths_catalog_default_points_at_our_catalog():
    assert get_default_config().PATHS_CATALOG.endswith("rcnn/config/paths_catalog.py")


def test_all_keys_lists_leaves_only():
    keys = all_keys(get_default_config())
    assert "MODEL.RPN.NMS_THRESH" in keys
    assert "MODEL.RPN" not in keys
    assert len(keys) == len(set(keys)) > 150
