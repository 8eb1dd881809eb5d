"""`python -m benchmark verify`: is the detector on a device the same detector as on the CPU?

The same weights (--ckpt, else the config's seeded random ones) and the same test images run on
the device at --precision and on the CPU in fp32. Detections are matched by box IoU and their
scores, labels and masks compared; then one training step (the library's `Trainer.step`) from
the same state on each side, and its losses and the losses after it compared (the latter show
whether the update agreed). Every number has a bound per precision; the record (mode `verify`)
holds the numbers and the bounds, and its status is failed when one is out of bounds.

The samplers take every anchor and proposal (BATCH_SIZE_PER_IMAGE very large) so that neither
side draws random numbers: two devices' generators never give the same sample.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

import torch
from yacs.config import CfgNode

from benchmark.errors import UsageError
from benchmark.launch import execute
from benchmark.workload.args import add_run_arguments
from benchmark.workload.build import Workload
from rcnn.checkpoint import load_weights
from rcnn.data import make_data_loader
from rcnn.engine.precision_check import ConvDtypeProbe
from rcnn.engine.run import Session, start_session
from rcnn.engine.trainer import Trainer
from rcnn.modeling.detector import build_detection_model
from rcnn.solver import make_lr_scheduler, make_optimizer
from rcnn.structures.bounding_box import BoxList
from rcnn.structures.boxlist_ops import boxlist_iou
from rcnn.structures.image_list import ImageList

logger = logging.getLogger("rcnn.bench")
MATCH_IOU = 0.5  # a device detection is the CPU's when their boxes overlap this much
MASK_THRESHOLD = 0.5  # mask probabilities to binary masks, as the mask paster does
TAKE_ALL = "1000000"  # a sampler batch no image fills: every candidate is sampled

# Lower bounds for agreement fractions and IoUs, upper bounds for the *_diff numbers. fp32 on a
# card differs from the CPU by summation order only; the reduced precisions by their rounding
# (fp16 keeps 11 significant bits, bf16 8) compounded through the network.
LIMITS: dict[str, dict[str, float]] = {
    "fp32": dict(box_match=0.95, box_iou=0.98, score_diff=0.02, label_agreement=0.98,
                 mask_iou=0.95, loss_diff=1e-3, loss_after_step_diff=5e-3),
    "tf32": dict(box_match=0.9, box_iou=0.95, score_diff=0.05, label_agreement=0.95,
                 mask_iou=0.9, loss_diff=1e-2, loss_after_step_diff=2e-2),
    "fp16": dict(box_match=0.8, box_iou=0.9, score_diff=0.1, label_agreement=0.9,
                 mask_iou=0.85, loss_diff=3e-2, loss_after_step_diff=5e-2),
    "bf16": dict(box_match=0.7, box_iou=0.85, score_diff=0.15, label_agreement=0.85,
                 mask_iou=0.8, loss_diff=6e-2, loss_after_step_diff=1e-1),
}  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="compare a device's detections and losses with the CPU's (one record)"
    )
    add_run_arguments(p, "infer")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    extra = ["MODEL.RPN.BATCH_SIZE_PER_IMAGE", TAKE_ALL, "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE"]
    extra.append(TAKE_ALL)
    if not args.ckpt:
        # random weights score every class alike, near 1/classes: keep them all to compare
        extra += ["MODEL.ROI_HEADS.SCORE_THRESH", "0.0"]
    return execute("verify", args, measure, extra=extra, check=_check)


def _check(args: argparse.Namespace) -> None:
    if args.cards != 1 or args.nodes != 1:
        raise UsageError("verify compares one card with the CPU: drop --cards and --nodes")


@dataclass
class Side:
    """What one device made of the same weights and images."""

    detections: list[BoxList]  # on the CPU, float32
    losses: list[dict[str, float]]  # the training losses before and after one step
    compute_dtype: str | None
    device: str  # the adapter's name: what "auto" resolved to


def run_side(
    cfg: CfgNode, state: dict[str, torch.Tensor], images: ImageList, targets: list[BoxList]
) -> Side:
    """Inference, then one training step, of the weights `state` on cfg's device."""
    session = start_session(cfg)
    model = build_detection_model(cfg)
    model.load_state_dict(state)
    model.to(session.device).eval()
    adapter, index, precision = session.adapter, session.index, session.precision
    with ConvDtypeProbe(model) as probe:
        with torch.no_grad(), adapter.autocast(precision):
            outputs = model(images.to(session.device))
        adapter.synchronize(index)
        detections = [_to_cpu_float(o) for o in outputs]
        optimizer = make_optimizer(cfg, model)
        trainer = Trainer(
            model, optimizer, make_lr_scheduler(cfg, optimizer), adapter, index, precision
        )
        losses = [trainer.step(images, targets), _losses(model, images, targets, session)]
    probe.check(precision, adapter.name)
    return Side(detections, losses, probe.dtype_name, adapter.name)


def _losses(
    model: torch.nn.Module, images: ImageList, targets: list[BoxList], session: Session
) -> dict[str, float]:
    """The training losses of the model as it is now, without a step."""
    device = session.device
    with torch.no_grad(), session.adapter.autocast(session.precision):
        losses = model(images.to(device), [t.to(device) for t in targets])
    return {k: float(v) for k, v in losses.items()}


def _to_cpu_float(boxes: BoxList) -> BoxList:
    out = boxes.to("cpu")
    out.bbox = out.bbox.float()
    for name in ("scores", "mask"):
        if out.has_field(name):
            out.add_field(name, out.get_field(name).float())
    return out


def match(ref: BoxList, dev: BoxList) -> list[tuple[int, int, float]]:
    """Greedy pairs (ref index, dev index, IoU), the CPU's best-scored detections first."""
    if len(ref) == 0 or len(dev) == 0:
        return []
    iou = boxlist_iou(ref, dev)
    taken = torch.zeros(len(dev), dtype=torch.bool)
    pairs = []
    for i in torch.argsort(ref.get_field("scores"), descending=True).tolist():
        row = iou[i].masked_fill(taken, -1.0)
        j = int(row.argmax())
        if row[j] >= MATCH_IOU:
            taken[j] = True
            pairs.append((i, j, float(row[j])))
    return pairs


def _mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a > MASK_THRESHOLD, b > MASK_THRESHOLD
    union = (a | b).sum().item()
    return (a & b).sum().item() / union if union else 1.0


def _rel_diff(ref: dict[str, float], dev: dict[str, float]) -> float:
    """The largest difference of a loss term or of the total, relative to the CPU's total loss
    (a term near zero, such as the box loss of an untrained head, would inflate its own)."""
    ref, dev = {**ref, "total": sum(ref.values())}, {**dev, "total": sum(dev.values())}
    return max(abs(ref[k] - dev[k]) for k in ref) / max(abs(ref["total"]), 1e-6)


def agreement(ref: Side, dev: Side) -> dict[str, float | None]:
    """The numbers LIMITS bounds (None where there was nothing to compare), and counts."""
    matched, ious, score_diffs, same_label, mask_ious = 0, [], [], [], []
    total_ref = sum(len(d) for d in ref.detections)
    total_dev = sum(len(d) for d in dev.detections)
    for r, d in zip(ref.detections, dev.detections, strict=True):
        for i, j, iou in match(r, d):
            matched += 1
            ious.append(iou)
            score_diffs.append(abs(float(r.get_field("scores")[i] - d.get_field("scores")[j])))
            same_label.append(int(r.get_field("labels")[i]) == int(d.get_field("labels")[j]))
            if r.has_field("mask"):
                mask_ious.append(_mask_iou(r.get_field("mask")[i], d.get_field("mask")[j]))
    most = max(total_ref, total_dev)
    return {
        "box_match": matched / most if most else 1.0,
        "box_iou": sum(ious) / len(ious) if ious else None,
        "score_diff": max(score_diffs) if score_diffs else None,
        "label_agreement": sum(same_label) / len(same_label) if same_label else None,
        "mask_iou": sum(mask_ious) / len(mask_ious) if mask_ious else None,
        "loss_diff": _rel_diff(ref.losses[0], dev.losses[0]),
        "loss_after_step_diff": _rel_diff(ref.losses[1], dev.losses[1]),
        "detections_cpu": float(total_ref),
        "detections_device": float(total_dev),
    }


def out_of_bounds(numbers: dict[str, float | None], limits: dict[str, float]) -> list[str]:
    """One 'name value vs bound' per number that misses its bound."""
    misses = []
    for name, bound in limits.items():
        value = numbers.get(name)
        if value is None:
            continue
        upper = name.endswith("_diff")
        if (value > bound) if upper else (value < bound):
            misses.append(f"{name} {value:.4g} {'>' if upper else '<'} {bound:g}")
    return misses


def measure(workload: Workload, args: argparse.Namespace) -> dict:
    cfg = workload.cfg
    reference_cfg = cfg.clone()
    reference_cfg.defrost()
    reference_cfg.MODEL.DEVICE, reference_cfg.MODEL.PRECISION = "cpu", "fp32"
    reference_cfg.freeze()
    images, targets, _ = next(iter(make_data_loader(reference_cfg, is_train=False)[0]))
    torch.manual_seed(cfg.SEED)
    model = build_detection_model(reference_cfg)
    if args.ckpt:
        load_weights(args.ckpt, model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    logger.info("verify: %d image(s) on the CPU in fp32 (the reference)", len(targets))
    ref = run_side(reference_cfg, state, images, targets)
    logger.info("verify: the same on %s in %s", cfg.MODEL.DEVICE, args.precision)
    dev = run_side(cfg, state, images, targets)
    numbers = agreement(ref, dev)
    limits = LIMITS[args.precision]
    misses = out_of_bounds(numbers, limits)
    notes = [] if args.ckpt else ["random weights (no --ckpt): scores are near-tied"]
    return dict(
        dataset=workload.data.record(len(targets)),
        agreement=numbers,
        agreement_limits=limits,
        compute_dtype=dev.compute_dtype,
        final_loss=sum(dev.losses[-1].values()),
        notes=notes or None,
        status="failed" if misses else "ok",
        error=f"{dev.device} disagrees with the CPU: {', '.join(misses)}" if misses else None,
    )
