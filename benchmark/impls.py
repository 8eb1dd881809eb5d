"""Our detector and its torchvision peer behind one small interface, fed the same tensors.

The peer is built the way torchvision trains from ImageNet weights (frozen BN, stem + res2
frozen, i.e. FREEZE_CONV_BODY_AT 2), with the config's class count and RPN / ROI sizes, and its
internal transform reduced to what ours does inside its forward, batching (padding) the
images: its normalize, resize and mask paste are off, so both models see the same pixels and
return the same kind of result (`WORK`). With `same_weights`, ours is built in torchvision's
layout (stride in the 3x3 conv) and loads the peer's weights: both then do the same work on the
same proposals. Both keep every detection up to DETECTIONS_PER_IMG (score threshold 0): random
weights can score every class below the config's threshold (they do at small test sizes), which
would leave the mask head no work.

Random weights are calibrated first (`calibrate_frozen_bn`): with identity frozen BNs the
activations of a random ResNet grow to ~1e4, objectness saturates and the RPN keeps a handful of
proposals, so later stages would do far less work than a trained detector's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from yacs.config import CfgNode

from benchmark.errors import UsageError
from benchmark.workload.lookup import config_path
from rcnn.checkpoint.torchvision_detection import load_torchvision_detection
from rcnn.config import load_config
from rcnn.device import DeviceAdapter
from rcnn.engine.trainer import Trainer
from rcnn.modeling.detector import build_detection_model
from rcnn.structures.bounding_box import BoxList
from rcnn.structures.image_list import to_image_list
from rcnn.structures.segmentation_mask import SegmentationMask

IMPLS = ("rcnn", "torchvision")

# What one timed iteration of either impl includes, by mode (the record's `work`).
WORK = {
    "infer": "pad the batch, forward to at most DETECTIONS_PER_IMG detections per image (score "
    "threshold 0), boxes at the input size, masks as 28x28 probabilities (not pasted); images "
    "come resized and normalised",
    "train": "pad the batch, forward to the losses, the trainer's step (loss all-reduce, one "
    "host read, backward, optimizer step); images come resized and normalised",
}

# Config body -> torchvision backbone name.
_TORCHVISION_BODIES = {
    ("R-50-FPN", 1, 64): "resnet50",
    ("R-101-FPN", 1, 64): "resnet101",
    ("R-101-FPN", 32, 8): "resnext101_32x8d",
}


@dataclass
class Batch:
    """One batch in both impls' input formats: the same pixels, boxes and (for a mask head's
    training) binary masks, uint8 [boxes, H, W] per image."""

    images: list[torch.Tensor]
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    masks: list[torch.Tensor] | None = None

    @property
    def size(self) -> int:
        return len(self.images)

    def to(self, device: torch.device) -> Batch:
        """The same batch on `device`."""
        fields = (self.images, self.boxes, self.labels, self.masks)
        return Batch(*(None if ts is None else [t.to(device) for t in ts] for ts in fields))


def synthetic_batch(
    batch: int,
    height: int,
    width: int,
    num_classes: int,
    seed: int = 0,
    boxes_per_image: int = 8,
    masks: bool = False,
) -> Batch:
    """Images with filled rectangles (BGR 0-255 minus a mean, as the model expects), their
    boxes and, with `masks`, the rectangles as binary masks; deterministic for a seed."""
    g = torch.Generator().manual_seed(seed)
    images, boxes, labels, image_masks = [], [], [], []
    for _ in range(batch):
        image = torch.randn(3, height, width, generator=g) * 10
        xy = torch.rand(boxes_per_image, 2, generator=g) * torch.tensor([width * 0.7, height * 0.7])
        wh = (torch.rand(boxes_per_image, 2, generator=g) * 0.25 + 0.05) * torch.tensor(
            [width, height]
        )
        b = torch.cat([xy, (xy + wh).minimum(torch.tensor([width - 1.0, height - 1.0]))], 1)
        rectangles = torch.zeros(boxes_per_image, height, width, dtype=torch.uint8)
        for i, (x1, y1, x2, y2) in enumerate(b.round().int().tolist()):
            image[:, y1:y2, x1:x2] += torch.rand(3, 1, 1, generator=g) * 200 - 100
            rectangles[i, y1:y2, x1:x2] = 1
        images.append(image)
        boxes.append(b)
        labels.append(torch.randint(1, num_classes, (boxes_per_image,), generator=g))
        image_masks.append(rectangles)
    return Batch(images, boxes, labels, image_masks if masks else None)


class Impl:
    """A detector that can run inference and a training step on a Batch."""

    name: str
    model: nn.Module
    channels_last: bool = False  # the backbone runs in channels-last memory format
    compiled: bool = False  # the backbone is torch.compile'd

    def infer(self, batch: Batch) -> object:
        raise NotImplementedError

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class TrainerModel(nn.Module):
    """An impl as the library Trainer's model: `model(batch, [])` is the impl's losses on the
    batch, so its training step is the trainer's own (the Batch moves itself to the card)."""

    def __init__(self, impl: Impl) -> None:
        super().__init__()
        self.impl = impl
        self.detector = impl.model  # a submodule: train() and parameters() reach it

    def forward(self, batch: Batch, targets: list) -> dict[str, torch.Tensor]:
        return self.impl.losses(batch)


class RcnnImpl(Impl):
    name = "rcnn"

    def __init__(self, model: nn.Module, size_divisible: int) -> None:
        self.model = model
        self.size_divisible = size_divisible

    def _images(self, batch: Batch):
        return to_image_list(batch.images, self.size_divisible)

    def infer(self, batch: Batch) -> list[BoxList]:
        return self.model(self._images(batch))

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        targets = []
        for image, boxes, labels in zip(batch.images, batch.boxes, batch.labels, strict=True):
            target = BoxList(boxes, (image.shape[-1], image.shape[-2]))
            target.add_field("labels", labels)
            targets.append(target)
        for target, masks in zip(targets, batch.masks or [], strict=False):
            target.add_field("masks", SegmentationMask(masks, target.size, "mask"))
        return self.model(self._images(batch), targets)


class TorchvisionImpl(Impl):
    name = "torchvision"

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def infer(self, batch: Batch) -> list[dict]:
        return self.model(batch.images)

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        targets = [
            {"boxes": b, "labels": lab} for b, lab in zip(batch.boxes, batch.labels, strict=True)
        ]
        for target, masks in zip(targets, batch.masks or [], strict=False):
            target["masks"] = masks
        return self.model(batch.images, targets)


def impl_trainer(impl: Impl, adapter: DeviceAdapter, index: int, precision: str) -> Trainer:
    """The library's Trainer around `impl`: compare's training step is the one train runs."""
    model = TrainerModel(impl)
    params = [p for p in model.parameters() if p.requires_grad]
    # A tiny, constant lr keeps random weights stable; the work per step is the same.
    optimizer = torch.optim.SGD(params, lr=1e-5, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return Trainer(model, optimizer, scheduler, adapter, index, precision)


def model_config(model: str, overrides: list[str] | None = None) -> CfgNode:
    """Config `model` (a NAME or .yaml path) with no weights: both impls start from random ones."""
    return load_config(config_path(model), ["MODEL.WEIGHT", "", *(overrides or [])])


def impl_config(
    model: str,
    same_weights: bool,
    channels_last: bool = False,
    compiled: bool = False,
    user: list[str] | None = None,
) -> CfgNode:
    """Our config: with `same_weights`, in torchvision's layout (the peer is built from it
    too), with our execution modes, then the `user`'s KEY VALUE overrides."""
    overrides = ["MODEL.RESNETS.STRIDE_IN_1X1", "False"] if same_weights else []
    overrides += ["MODEL.CHANNELS_LAST", str(channels_last), "MODEL.COMPILE", str(compiled)]
    overrides += ["MODEL.ROI_HEADS.SCORE_THRESH", "0.0"]  # see the module docstring
    return model_config(model, [*overrides, *(user or [])])


def build_torchvision_peer(cfg: CfgNode, image_size: tuple[int, int]) -> nn.Module:
    """torchvision's Faster/Mask R-CNN matching the config's body, classes and head sizes."""
    try:
        from torchvision.models.detection import FasterRCNN, MaskRCNN
        from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
        from torchvision.ops.misc import FrozenBatchNorm2d
    except Exception as err:  # a torchvision that does not match torch fails with anything
        raise UsageError(
            f"compare needs torchvision (it builds torchvision's peer and loads its weights into "
            f"ours), and it does not import here ({type(err).__name__}: {err}); install the "
            f"torchvision that matches torch {torch.__version__}; train, infer, ops and devices "
            f"run without it"
        ) from err

    r = cfg.MODEL.RESNETS
    key = (cfg.MODEL.BACKBONE.CONV_BODY, r.NUM_GROUPS, r.WIDTH_PER_GROUP)
    if key not in _TORCHVISION_BODIES:
        raise UsageError(f"no torchvision peer for {key}; known: {sorted(_TORCHVISION_BODIES)}")
    trainable = 5 - max(cfg.MODEL.BACKBONE.FREEZE_CONV_BODY_AT, 0)
    backbone = resnet_fpn_backbone(
        backbone_name=_TORCHVISION_BODIES[key],
        weights=None,
        norm_layer=FrozenBatchNorm2d,
        trainable_layers=trainable,
    )
    rpn, rh = cfg.MODEL.RPN, cfg.MODEL.ROI_HEADS
    detector = MaskRCNN if cfg.MODEL.MASK_ON else FasterRCNN
    peer = detector(
        backbone,
        num_classes=cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES,
        min_size=min(image_size),
        max_size=max(image_size),
        image_mean=[0.0, 0.0, 0.0],
        image_std=[1.0, 1.0, 1.0],
        rpn_pre_nms_top_n_train=rpn.PRE_NMS_TOP_N_TRAIN,
        rpn_pre_nms_top_n_test=rpn.PRE_NMS_TOP_N_TEST,
        rpn_post_nms_top_n_train=rpn.FPN_POST_NMS_TOP_N_TRAIN,
        rpn_post_nms_top_n_test=rpn.FPN_POST_NMS_TOP_N_TEST,
        rpn_nms_thresh=rpn.NMS_THRESH,
        rpn_fg_iou_thresh=rpn.FG_IOU_THRESHOLD,
        rpn_bg_iou_thresh=rpn.BG_IOU_THRESHOLD,
        rpn_batch_size_per_image=rpn.BATCH_SIZE_PER_IMAGE,
        rpn_positive_fraction=rpn.POSITIVE_FRACTION,
        box_score_thresh=rh.SCORE_THRESH,
        box_nms_thresh=rh.NMS,
        box_detections_per_img=rh.DETECTIONS_PER_IMG,
        box_fg_iou_thresh=rh.FG_IOU_THRESHOLD,
        box_bg_iou_thresh=rh.BG_IOU_THRESHOLD,
        box_batch_size_per_image=rh.BATCH_SIZE_PER_IMAGE,
        box_positive_fraction=rh.POSITIVE_FRACTION,
    )
    # Only batching stays in its forward, as in ours (instance attributes shadow the methods).
    peer.transform.normalize = _as_given
    peer.transform.resize = _as_given_with_target
    peer.transform.postprocess = _detections_as_given
    return peer


def _as_given(image: torch.Tensor) -> torch.Tensor:
    return image


def _as_given_with_target(image: torch.Tensor, target: dict | None) -> tuple:
    return image, target


def _detections_as_given(result: list[dict], image_shapes: list, original_sizes: list) -> list:
    """The peer's detections without its paste: boxes already at the input size (no resize),
    masks as the mask head's 28x28 probabilities, as ours returns them."""
    return result


@torch.no_grad()
def calibrate_frozen_bn(model: nn.Module, images: torch.Tensor) -> None:
    """Set every frozen BN's statistics so that its output on `images` has zero mean and unit
    variance per channel (one forward pass, in order, through pre-hooks)."""

    def set_stats(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].transpose(0, 1).flatten(1)
        module.running_mean.copy_(x.mean(1))
        module.running_var.copy_(x.var(1) + 1e-2)

    frozen = [
        m
        for m in model.modules()
        if hasattr(m, "running_var") and not any(True for _ in m.parameters())
    ]
    handles = [m.register_forward_pre_hook(set_stats) for m in frozen]
    try:
        backbone = model.backbone
        backbone.eval()
        backbone(images)
    finally:
        for h in handles:
            h.remove()


def build_impls(
    model: str,
    impls: list[str],
    image_size: tuple[int, int],
    calibration: torch.Tensor | None = None,
    same_weights: bool = True,
    seed: int = 0,
    channels_last: bool = False,
    compile_backend: str | None = None,
    peer_channels_last: bool = False,
    user: list[str] | None = None,
) -> list[Impl]:
    """The requested impls of config `model` for (height, width) inputs, in `impls` order;
    `calibration` images [N, 3, H, W] calibrate the random frozen BNs. `channels_last` and
    `compile_backend` set our execution modes; `peer_channels_last` the peer's layout; `user`
    holds KEY VALUE config overrides for both."""
    unknown = sorted(set(impls) - set(IMPLS))
    if unknown:
        raise ValueError(f"unknown impl(s) {unknown}; known: {list(IMPLS)}")
    cfg = impl_config(model, same_weights, channels_last, compile_backend is not None, user)
    torch.manual_seed(seed)
    peer = build_torchvision_peer(cfg, image_size)
    if calibration is not None:
        calibrate_frozen_bn(peer, calibration)
    if peer_channels_last:
        # Channels-last weights make every conv of the backbone run channels-last.
        peer.backbone.to(memory_format=torch.channels_last)
    built: dict[str, Impl] = {"torchvision": TorchvisionImpl(peer)}
    built["torchvision"].channels_last = peer_channels_last
    if "rcnn" in impls:
        ours = build_detection_model(cfg, compile_backend=compile_backend or "inductor")
        if calibration is not None and not same_weights:
            calibrate_frozen_bn(ours, calibration)
        if same_weights:
            eps = float(getattr(ours.backbone.body.stem.bn1, "eps", 0.0))
            load_torchvision_detection(ours, peer.state_dict(), target_bn_eps=eps)
        built["rcnn"] = RcnnImpl(ours, cfg.DATALOADER.SIZE_DIVISIBILITY)
        built["rcnn"].channels_last = channels_last
        built["rcnn"].compiled = compile_backend is not None
    return [built[name] for name in impls]
