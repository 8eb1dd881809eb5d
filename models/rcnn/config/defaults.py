"""Default configuration: every key and default of maskrcnn-benchmark, plus the project's own.

The maskrcnn-benchmark part keeps its names and default values so that its ``configs/*.yaml``
load unchanged. Keys this project adds are marked ``# rcnn-bench:`` where they are defined:

- ``MODEL.DEVICE`` defaults to ``"auto"`` (maskrcnn-benchmark: ``"cuda"``): any backend the
  device adapter knows (``cpu``, ``cuda``, ``mlu``, ``npu``, ``mlu:1``, ...); ``auto`` picks the
  first available accelerator, else cpu. A config that says ``"cuda"`` still means cuda.
- ``MODEL.PRECISION``: ``fp32`` | ``tf32`` | ``fp16`` | ``bf16``. When a config leaves it unset
  and says ``DTYPE: "float16"`` (maskrcnn-benchmark's apex switch), the loader sets ``fp16``.
- ``MODEL.BFP``, ``MODEL.ROI_HEADS.SAMPLER``, ``MODEL.ROI_HEADS.IOU_BALANCED``,
  ``MODEL.ROI_BOX_HEAD.LOSS``, ``MODEL.ROI_BOX_HEAD.BALANCED_L1``: Libra R-CNN; the defaults
  switch all of it off, so the detector is plain Faster/Mask R-CNN.
- ``DATASETS.ON_BAD_DATA``: ``reject`` (stop before training) | ``skip`` (drop, count, warn).
- ``DATASETS.BOXES_OUTSIDE_IMAGE``: ``clip`` (clip, count, warn) | ``reject`` (a bad item).
- ``DATASETS.ALLOW_ABSOLUTE_PATHS``: read image paths outside the data root (off: refused).
- ``SOLVER.TARGET_BBOX_AP``: stop training once bbox AP reaches it (0.0 = off).
- ``SEED``: seed of every RNG the run uses.
- ``MODEL.BACKBONE.CONV_BODY`` also takes ``R-18-FPN`` and ``R-34-FPN`` (BasicBlock bodies,
  ``MODEL.RESNETS.TRANS_FUNC: "BasicBlockWithFixedBatchNorm"``); the stage specs live in modeling.

``CHOICES`` lists the keys whose value must be one of a fixed set; the loader enforces it.
Periodic evaluation during training is maskrcnn-benchmark's own ``SOLVER.TEST_PERIOD``.
"""

import os

from yacs.config import CfgNode as CN

from rcnn.device.base import PRECISIONS

_C = CN()

# ---------------------------------------------------------------------------------------------
# MODEL
# ---------------------------------------------------------------------------------------------
_C.MODEL = CN()
_C.MODEL.RPN_ONLY = False
_C.MODEL.MASK_ON = False
_C.MODEL.RETINANET_ON = False
_C.MODEL.KEYPOINT_ON = False
# rcnn-bench: "auto" instead of "cuda" so one config runs on whatever card the host has
_C.MODEL.DEVICE = "auto"
_C.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
_C.MODEL.CLS_AGNOSTIC_BBOX_REG = False
# "" (no weights), a local .pth/.pkl, or catalog:// / http(s):// looked up in $CHECKPOINT_DIR
_C.MODEL.WEIGHT = ""
# rcnn-bench: numeric precision of training and inference (see CHOICES)
_C.MODEL.PRECISION = "fp32"
# rcnn-bench: torch.compile the backbone (body, FPN, BFP); the device adapter's
# supports_compile() says whether the device can
_C.MODEL.COMPILE = False
# rcnn-bench: "static" (one graph per padded size: shape buckets, warmed before the window) or
# "dynamic" (torch.compile dynamic=True); "" takes the device adapter's compile_shapes
_C.MODEL.COMPILE_SHAPES = ""
# rcnn-bench: backbone weights and input in channels-last (NHWC) memory format
_C.MODEL.CHANNELS_LAST = False

# ---------------------------------------------------------------------------------------------
# INPUT
# ---------------------------------------------------------------------------------------------
_C.INPUT = CN()
_C.INPUT.MIN_SIZE_TRAIN = (800,)
_C.INPUT.MAX_SIZE_TRAIN = 1333
_C.INPUT.MIN_SIZE_TEST = 800
_C.INPUT.MAX_SIZE_TEST = 1333
_C.INPUT.PIXEL_MEAN = [102.9801, 115.9465, 122.7717]
_C.INPUT.PIXEL_STD = [1.0, 1.0, 1.0]
# Caffe2-trained backbones expect BGR in 0-255
_C.INPUT.TO_BGR255 = True
_C.INPUT.BRIGHTNESS = 0.0
_C.INPUT.CONTRAST = 0.0
_C.INPUT.SATURATION = 0.0
_C.INPUT.HUE = 0.0
_C.INPUT.HORIZONTAL_FLIP_PROB_TRAIN = 0.5
_C.INPUT.VERTICAL_FLIP_PROB_TRAIN = 0.0

# ---------------------------------------------------------------------------------------------
# DATASETS (names from rcnn.config.paths_catalog)
# ---------------------------------------------------------------------------------------------
_C.DATASETS = CN()
_C.DATASETS.TRAIN = ()
_C.DATASETS.TEST = ()
# rcnn-bench: what a dataset does with a bad image or annotation (see CHOICES)
_C.DATASETS.ON_BAD_DATA = "reject"
# rcnn-bench: a box extending past its image is clipped (counted in a warning) or a bad item
_C.DATASETS.BOXES_OUTSIDE_IMAGE = "clip"
# rcnn-bench: read image paths that are absolute or lead out of the data root ('..', symlinks)
_C.DATASETS.ALLOW_ABSOLUTE_PATHS = False

# ---------------------------------------------------------------------------------------------
# DATALOADER
# ---------------------------------------------------------------------------------------------
_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4
_C.DATALOADER.SIZE_DIVISIBILITY = 0
_C.DATALOADER.ASPECT_RATIO_GROUPING = True
# rcnn-bench: pad each batch to the smallest of a few fixed canvases (rcnn.data.buckets), N long
# sides per orientation; 0 off; -1 auto: off, or AUTO_BUCKETS when compiled for static shapes
_C.DATALOADER.SHAPE_BUCKETS = -1

# ---------------------------------------------------------------------------------------------
# BACKBONE, FPN, GROUP_NORM
# ---------------------------------------------------------------------------------------------
_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.CONV_BODY = "R-50-C4"
# stages up to and including this one are frozen (stem = 1, res2 = 2)
_C.MODEL.BACKBONE.FREEZE_CONV_BODY_AT = 2

_C.MODEL.FPN = CN()
_C.MODEL.FPN.USE_GN = False
_C.MODEL.FPN.USE_RELU = False

_C.MODEL.GROUP_NORM = CN()
_C.MODEL.GROUP_NORM.DIM_PER_GP = -1
_C.MODEL.GROUP_NORM.NUM_GROUPS = 32
_C.MODEL.GROUP_NORM.EPSILON = 1e-5

# rcnn-bench: Libra R-CNN balanced feature pyramid, applied after the FPN when ON
_C.MODEL.BFP = CN()
_C.MODEL.BFP.ON = False
_C.MODEL.BFP.IN_CHANNELS = 256
_C.MODEL.BFP.NUM_LEVELS = 5
# pyramid level (0 = finest) at which the levels are gathered and refined
_C.MODEL.BFP.REFINE_LEVEL = 2
_C.MODEL.BFP.REFINE_TYPE = "non_local"

# ---------------------------------------------------------------------------------------------
# RPN
# ---------------------------------------------------------------------------------------------
_C.MODEL.RPN = CN()
_C.MODEL.RPN.USE_FPN = False
_C.MODEL.RPN.ANCHOR_SIZES = (32, 64, 128, 256, 512)
_C.MODEL.RPN.ANCHOR_STRIDE = (16,)
_C.MODEL.RPN.ASPECT_RATIOS = (0.5, 1.0, 2.0)
_C.MODEL.RPN.STRADDLE_THRESH = 0
_C.MODEL.RPN.FG_IOU_THRESHOLD = 0.7
_C.MODEL.RPN.BG_IOU_THRESHOLD = 0.3
_C.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 256
_C.MODEL.RPN.POSITIVE_FRACTION = 0.5
# with FPN these are per level
_C.MODEL.RPN.PRE_NMS_TOP_N_TRAIN = 12000
_C.MODEL.RPN.PRE_NMS_TOP_N_TEST = 6000
_C.MODEL.RPN.POST_NMS_TOP_N_TRAIN = 2000
_C.MODEL.RPN.POST_NMS_TOP_N_TEST = 1000
_C.MODEL.RPN.NMS_THRESH = 0.7
_C.MODEL.RPN.MIN_SIZE = 0
_C.MODEL.RPN.FPN_POST_NMS_TOP_N_TRAIN = 2000
_C.MODEL.RPN.FPN_POST_NMS_TOP_N_TEST = 2000
# per batch, as Detectron did (maskrcnn-benchmark issue #672)
_C.MODEL.RPN.FPN_POST_NMS_PER_BATCH = True
_C.MODEL.RPN.RPN_HEAD = "SingleConvRPNHead"

# ---------------------------------------------------------------------------------------------
# ROI_HEADS
# ---------------------------------------------------------------------------------------------
_C.MODEL.ROI_HEADS = CN()
_C.MODEL.ROI_HEADS.USE_FPN = False
_C.MODEL.ROI_HEADS.FG_IOU_THRESHOLD = 0.5
_C.MODEL.ROI_HEADS.BG_IOU_THRESHOLD = 0.5
_C.MODEL.ROI_HEADS.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
_C.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 512
_C.MODEL.ROI_HEADS.POSITIVE_FRACTION = 0.25
_C.MODEL.ROI_HEADS.SCORE_THRESH = 0.05
_C.MODEL.ROI_HEADS.NMS = 0.5
_C.MODEL.ROI_HEADS.DETECTIONS_PER_IMG = 100
# rcnn-bench: proposal sampler of the box head; "iou_balanced" is Libra R-CNN's (see CHOICES)
_C.MODEL.ROI_HEADS.SAMPLER = "random"
# rcnn-bench: IoU-balanced negative sampling (Libra R-CNN)
_C.MODEL.ROI_HEADS.IOU_BALANCED = CN()
_C.MODEL.ROI_HEADS.IOU_BALANCED.NUM_BINS = 3
# negatives below this IoU are sampled at random (-1.0 = every negative is IoU-binned)
_C.MODEL.ROI_HEADS.IOU_BALANCED.FLOOR_THR = -1.0
_C.MODEL.ROI_HEADS.IOU_BALANCED.FLOOR_FRACTION = 0.0

_C.MODEL.ROI_BOX_HEAD = CN()
_C.MODEL.ROI_BOX_HEAD.FEATURE_EXTRACTOR = "ResNet50Conv5ROIFeatureExtractor"
_C.MODEL.ROI_BOX_HEAD.PREDICTOR = "FastRCNNPredictor"
_C.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 14
_C.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 0
_C.MODEL.ROI_BOX_HEAD.POOLER_SCALES = (1.0 / 16,)
# foreground classes + background
_C.MODEL.ROI_BOX_HEAD.NUM_CLASSES = 81
_C.MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM = 1024
_C.MODEL.ROI_BOX_HEAD.USE_GN = False
_C.MODEL.ROI_BOX_HEAD.DILATION = 1
_C.MODEL.ROI_BOX_HEAD.CONV_HEAD_DIM = 256
_C.MODEL.ROI_BOX_HEAD.NUM_STACKED_CONVS = 4
# rcnn-bench: box regression loss; "balanced_l1" is Libra R-CNN's (see CHOICES)
_C.MODEL.ROI_BOX_HEAD.LOSS = "smooth_l1"
# rcnn-bench: balanced L1 loss parameters (Libra R-CNN paper defaults)
_C.MODEL.ROI_BOX_HEAD.BALANCED_L1 = CN()
_C.MODEL.ROI_BOX_HEAD.BALANCED_L1.ALPHA = 0.5
_C.MODEL.ROI_BOX_HEAD.BALANCED_L1.GAMMA = 1.5
_C.MODEL.ROI_BOX_HEAD.BALANCED_L1.BETA = 1.0

_C.MODEL.ROI_MASK_HEAD = CN()
_C.MODEL.ROI_MASK_HEAD.FEATURE_EXTRACTOR = "ResNet50Conv5ROIFeatureExtractor"
_C.MODEL.ROI_MASK_HEAD.PREDICTOR = "MaskRCNNC4Predictor"
_C.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
_C.MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO = 0
_C.MODEL.ROI_MASK_HEAD.POOLER_SCALES = (1.0 / 16,)
_C.MODEL.ROI_MASK_HEAD.MLP_HEAD_DIM = 1024
_C.MODEL.ROI_MASK_HEAD.CONV_LAYERS = (256, 256, 256, 256)
_C.MODEL.ROI_MASK_HEAD.RESOLUTION = 14
_C.MODEL.ROI_MASK_HEAD.SHARE_BOX_FEATURE_EXTRACTOR = True
# paste masks into the image inside the model (else the evaluator does it)
_C.MODEL.ROI_MASK_HEAD.POSTPROCESS_MASKS = False
_C.MODEL.ROI_MASK_HEAD.POSTPROCESS_MASKS_THRESHOLD = 0.5
_C.MODEL.ROI_MASK_HEAD.DILATION = 1
_C.MODEL.ROI_MASK_HEAD.USE_GN = False

# kept so that keypoint configs load; this project builds no keypoint head
_C.MODEL.ROI_KEYPOINT_HEAD = CN()
_C.MODEL.ROI_KEYPOINT_HEAD.FEATURE_EXTRACTOR = "KeypointRCNNFeatureExtractor"
_C.MODEL.ROI_KEYPOINT_HEAD.PREDICTOR = "KeypointRCNNPredictor"
_C.MODEL.ROI_KEYPOINT_HEAD.POOLER_RESOLUTION = 14
_C.MODEL.ROI_KEYPOINT_HEAD.POOLER_SAMPLING_RATIO = 0
_C.MODEL.ROI_KEYPOINT_HEAD.POOLER_SCALES = (1.0 / 16,)
_C.MODEL.ROI_KEYPOINT_HEAD.MLP_HEAD_DIM = 1024
_C.MODEL.ROI_KEYPOINT_HEAD.CONV_LAYERS = (512,) * 8
_C.MODEL.ROI_KEYPOINT_HEAD.RESOLUTION = 14
_C.MODEL.ROI_KEYPOINT_HEAD.NUM_CLASSES = 17
_C.MODEL.ROI_KEYPOINT_HEAD.SHARE_BOX_FEATURE_EXTRACTOR = True

# ---------------------------------------------------------------------------------------------
# RESNETS (ResNet and ResNeXt; used by the backbone and by the C4 box head)
# ---------------------------------------------------------------------------------------------
_C.MODEL.RESNETS = CN()
# 1 = ResNet, > 1 = ResNeXt
_C.MODEL.RESNETS.NUM_GROUPS = 1
_C.MODEL.RESNETS.WIDTH_PER_GROUP = 64
# True for MSRA (Caffe2) weights, False for FAIR ResNeXt and torchvision weights
_C.MODEL.RESNETS.STRIDE_IN_1X1 = True
_C.MODEL.RESNETS.TRANS_FUNC = "BottleneckWithFixedBatchNorm"
_C.MODEL.RESNETS.STEM_FUNC = "StemWithFixedBatchNorm"
_C.MODEL.RESNETS.RES5_DILATION = 1
# channels out of the backbone: res4/res5 for C4/C5 bodies, the FPN width for FPN bodies
_C.MODEL.RESNETS.BACKBONE_OUT_CHANNELS = 256 * 4
_C.MODEL.RESNETS.RES2_OUT_CHANNELS = 256
_C.MODEL.RESNETS.STEM_OUT_CHANNELS = 64
_C.MODEL.RESNETS.STAGE_WITH_DCN = (False, False, False, False)
_C.MODEL.RESNETS.WITH_MODULATED_DCN = False
_C.MODEL.RESNETS.DEFORMABLE_GROUPS = 1

# kept so that RetinaNet configs load; this project builds no RetinaNet head
_C.MODEL.RETINANET = CN()
_C.MODEL.RETINANET.NUM_CLASSES = 81
_C.MODEL.RETINANET.ANCHOR_SIZES = (32, 64, 128, 256, 512)
_C.MODEL.RETINANET.ASPECT_RATIOS = (0.5, 1.0, 2.0)
_C.MODEL.RETINANET.ANCHOR_STRIDES = (8, 16, 32, 64, 128)
_C.MODEL.RETINANET.STRADDLE_THRESH = 0
_C.MODEL.RETINANET.OCTAVE = 2.0
_C.MODEL.RETINANET.SCALES_PER_OCTAVE = 3
_C.MODEL.RETINANET.USE_C5 = True
_C.MODEL.RETINANET.NUM_CONVS = 4
_C.MODEL.RETINANET.BBOX_REG_WEIGHT = 4.0
_C.MODEL.RETINANET.BBOX_REG_BETA = 0.11
_C.MODEL.RETINANET.PRE_NMS_TOP_N = 1000
_C.MODEL.RETINANET.FG_IOU_THRESHOLD = 0.5
_C.MODEL.RETINANET.BG_IOU_THRESHOLD = 0.4
_C.MODEL.RETINANET.LOSS_ALPHA = 0.25
_C.MODEL.RETINANET.LOSS_GAMMA = 2.0
_C.MODEL.RETINANET.PRIOR_PROB = 0.01
_C.MODEL.RETINANET.INFERENCE_TH = 0.05
_C.MODEL.RETINANET.NMS_TH = 0.4

# kept so that FBNet configs load; this project builds no FBNet body
_C.MODEL.FBNET = CN()
_C.MODEL.FBNET.ARCH = "default"
_C.MODEL.FBNET.ARCH_DEF = ""
_C.MODEL.FBNET.BN_TYPE = "bn"
_C.MODEL.FBNET.SCALE_FACTOR = 1.0
_C.MODEL.FBNET.WIDTH_DIVISOR = 1
_C.MODEL.FBNET.DW_CONV_SKIP_BN = True
_C.MODEL.FBNET.DW_CONV_SKIP_RELU = True
_C.MODEL.FBNET.DET_HEAD_LAST_SCALE = 1.0
_C.MODEL.FBNET.DET_HEAD_BLOCKS = []
_C.MODEL.FBNET.DET_HEAD_STRIDE = 0
_C.MODEL.FBNET.KPTS_HEAD_LAST_SCALE = 0.0
_C.MODEL.FBNET.KPTS_HEAD_BLOCKS = []
_C.MODEL.FBNET.KPTS_HEAD_STRIDE = 0
_C.MODEL.FBNET.MASK_HEAD_LAST_SCALE = 0.0
_C.MODEL.FBNET.MASK_HEAD_BLOCKS = []
_C.MODEL.FBNET.MASK_HEAD_STRIDE = 0
_C.MODEL.FBNET.RPN_HEAD_BLOCKS = 0
_C.MODEL.FBNET.RPN_BN_TYPE = ""

# ---------------------------------------------------------------------------------------------
# SOLVER
# ---------------------------------------------------------------------------------------------
_C.SOLVER = CN()
_C.SOLVER.MAX_ITER = 40000
_C.SOLVER.BASE_LR = 0.001
_C.SOLVER.BIAS_LR_FACTOR = 2
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.WEIGHT_DECAY = 0.0005
_C.SOLVER.WEIGHT_DECAY_BIAS = 0
_C.SOLVER.GAMMA = 0.1
_C.SOLVER.STEPS = (30000,)
_C.SOLVER.WARMUP_FACTOR = 1.0 / 3
_C.SOLVER.WARMUP_ITERS = 500
_C.SOLVER.WARMUP_METHOD = "linear"
_C.SOLVER.CHECKPOINT_PERIOD = 2500
# evaluate on DATASETS.TEST every this many iterations (0 = only at the end)
_C.SOLVER.TEST_PERIOD = 0
# global over all cards: 16 on 8 cards is 2 per card
_C.SOLVER.IMS_PER_BATCH = 16
# rcnn-bench: stop once bbox AP on DATASETS.TEST reaches this, for time-to-accuracy (0.0 = off)
_C.SOLVER.TARGET_BBOX_AP = 0.0

# ---------------------------------------------------------------------------------------------
# TEST
# ---------------------------------------------------------------------------------------------
_C.TEST = CN()
_C.TEST.EXPECTED_RESULTS = []
_C.TEST.EXPECTED_RESULTS_SIGMA_TOL = 4
# global over all cards
_C.TEST.IMS_PER_BATCH = 8
_C.TEST.DETECTIONS_PER_IMG = 100
# rcnn-bench: how masks are pasted at the original size for COCO scoring: "reference"
# (maskrcnn-benchmark's integer boxes) or "subpixel" (float box edges); one threshold either way
_C.TEST.MASK_PASTE = "reference"

_C.TEST.BBOX_AUG = CN()
_C.TEST.BBOX_AUG.ENABLED = False
_C.TEST.BBOX_AUG.H_FLIP = False
_C.TEST.BBOX_AUG.SCALES = ()
_C.TEST.BBOX_AUG.MAX_SIZE = 4000
_C.TEST.BBOX_AUG.SCALE_H_FLIP = False

# ---------------------------------------------------------------------------------------------
# Misc
# ---------------------------------------------------------------------------------------------
_C.OUTPUT_DIR = "."
_C.PATHS_CATALOG = os.path.join(os.path.dirname(__file__), "paths_catalog.py")
# maskrcnn-benchmark's apex switch ("float32" | "float16"); see MODEL.PRECISION
_C.DTYPE = "float32"
_C.AMP_VERBOSE = False
# rcnn-bench: seed for torch, numpy and python RNGs of the run
_C.SEED = 0

# Keys whose value must be one of a fixed set.
CHOICES: dict[str, tuple[str, ...]] = {
    "MODEL.PRECISION": PRECISIONS,
    "DTYPE": ("float32", "float16"),
    "DATASETS.ON_BAD_DATA": ("reject", "skip"),
    "DATASETS.BOXES_OUTSIDE_IMAGE": ("clip", "reject"),
    "MODEL.ROI_HEADS.SAMPLER": ("random", "iou_balanced"),
    "MODEL.ROI_BOX_HEAD.LOSS": ("smooth_l1", "balanced_l1"),
    "MODEL.BFP.REFINE_TYPE": ("non_local", "conv", "none"),
    "SOLVER.WARMUP_METHOD": ("constant", "linear"),
    "TEST.MASK_PASTE": ("reference", "subpixel"),
    "MODEL.COMPILE_SHAPES": ("", "static", "dynamic"),
}

# Keys older maskrcnn-benchmark configs used, and where their value goes now.
RENAMED_KEYS: dict[str, str] = {
    "MODEL.BACKBONE.OUT_CHANNELS": "MODEL.RESNETS.BACKBONE_OUT_CHANNELS",
}
