"""Build a run from a config: device, model, optimizer, data and checkpoints; train or test.

`tools/train_net.py`, `tools/test_net.py` and the benchmark harness all go through here, so a
benchmark measures exactly the training and inference a user runs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from rcnn.checkpoint import (
    CheckpointError,
    LoadReport,
    last_checkpoint,
    load_checkpoint,
    load_weights,
    remove_stale_temp_files,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from rcnn.data import make_data_loader
from rcnn.device import DeviceAdapter, DeviceError, resolve
from rcnn.errors import TrainingInterrupted
from rcnn.layers.dispatch import mode as ops_mode
from rcnn.modeling.detector import build_detection_model
from rcnn.solver import make_lr_scheduler, make_optimizer
from rcnn.utils import comm

from .inference import inference
from .trainer import StepResult, Trainer, TrainHooks

logger = logging.getLogger("rcnn.run")


@dataclass
class Session:
    """Where and how this process runs: resolved once, before any work."""

    cfg: object
    adapter: DeviceAdapter
    index: int
    precision: str
    distributed: bool

    @property
    def device(self) -> torch.device:
        return self.adapter.torch_device(self.index)

    @property
    def compile_shapes(self) -> str | None:
        """None when the backbone runs eager, else "static" or "dynamic": MODEL.COMPILE_SHAPES
        or, when it is "", what the device adapter asks for."""
        if not self.cfg.MODEL.COMPILE:
            return None
        return self.cfg.MODEL.COMPILE_SHAPES or self.adapter.compile_shapes


def start_session(cfg) -> Session:
    """Resolve the device and precision (errors before work), join torchrun's group, seed."""
    precision = cfg.MODEL.PRECISION
    ops_mode()  # a bad RCNN_OPS fails here, before work, not at the first nms
    adapter, index = resolve(cfg.MODEL.DEVICE, precision)
    distributed = comm.init_distributed(adapter, index)
    adapter.set_device(index)
    adapter.configure_precision(precision)
    adapter.manual_seed(cfg.SEED)
    return Session(cfg, adapter, index, precision, distributed)


def compile_backend(adapter: DeviceAdapter) -> str:
    """The adapter's torch.compile backend; a DeviceError before work when it has none."""
    supported, answer = adapter.supports_compile()
    if not supported:
        raise DeviceError(f"MODEL.COMPILE True: {adapter.name} cannot compile: {answer}")
    return answer


def build_model(session: Session) -> torch.nn.Module:
    cfg = session.cfg
    if not cfg.MODEL.COMPILE:
        return build_detection_model(cfg).to(session.device)
    backend = compile_backend(session.adapter)
    model = build_detection_model(cfg, backend, session.compile_shapes)
    return model.to(session.device)


def wrap_distributed(model: torch.nn.Module, session: Session) -> torch.nn.Module:
    if not session.distributed:
        return model
    ids = [session.index] if session.adapter.is_accelerator else None
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=ids, broadcast_buffers=False, find_unused_parameters=False
    )


class Checkpointer:
    """Saves model, optimizer, schedule, scaler, iteration and RNG states on rank 0."""

    def __init__(self, session: Session, model, optimizer, scheduler, scaler, output_dir: Path):
        self.session, self.model = session, model
        self.optimizer, self.scheduler, self.scaler = optimizer, scheduler, scaler
        self.output_dir = output_dir

    def __call__(self, name: str, iteration: int) -> None:
        if not comm.is_main_process():
            return
        extra = {"rng": rng_state()}
        card_rng = self.session.adapter.rng_state(self.session.index)
        if card_rng is not None:
            extra["card_rng"] = card_rng
        path = save_checkpoint(
            self.output_dir / f"{name}.pth",
            self.model,
            self.optimizer,
            self.scheduler,
            self.scaler,
            iteration,
            self.session.cfg,
            extra,
        )
        logger.info("saved checkpoint %s", path)

    def resume(self, path: str) -> int:
        resumed = load_checkpoint(path, self.model, self.optimizer, self.scheduler, self.scaler)
        try:
            if "rng" in resumed.extra:
                set_rng_state(resumed.extra["rng"])
            if "card_rng" in resumed.extra:
                self.session.adapter.set_rng_state(resumed.extra["card_rng"], self.session.index)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as e:
            raise CheckpointError(
                f"{path}: its saved RNG state is damaged ({type(e).__name__}: {e}); "
                "resume from an earlier checkpoint or start over with --no-resume"
            ) from None
        logger.info("resumed from %s at iteration %d", path, resumed.iteration)
        return resumed.iteration


class EvalHook:
    """Evaluate every `period` iterations; stop once bbox AP reaches `target` (MLPerf-style)."""

    def __init__(self, session: Session, period: int, target_ap: float):
        self.session, self.period, self.target_ap = session, period, target_ap
        self.start = time.perf_counter()
        self.history: list[tuple[int, float]] = []
        self.time_to_accuracy_s: float | None = None
        self.eval_s = 0.0  # every evaluation's wall time, inference included
        self.scores: dict[str, dict[str, float]] | None = None  # the last evaluation's, rank 0

    def due(self, iteration: int) -> bool:
        """Whether this hook evaluates after `iteration`."""
        return bool(self.period) and iteration % self.period == 0

    def __call__(self, trainer: Trainer, step: StepResult) -> bool:
        if not self.due(step.iteration):
            return False
        start = time.perf_counter()
        scores = evaluate(self.session, trainer.model)
        self.eval_s += time.perf_counter() - start
        self.scores = scores
        ap = scores.get("bbox", {}).get("ap", 0.0) if scores else 0.0
        self.history.append((step.iteration, ap))
        reached = comm.all_gather_objects(bool(self.target_ap and ap >= self.target_ap))[0]
        if reached:
            self.time_to_accuracy_s = time.perf_counter() - self.start
            logger.info(
                "target bbox AP %.3f reached at iteration %d after %.1f s",
                self.target_ap,
                step.iteration,
                self.time_to_accuracy_s,
            )
        return reached


@dataclass
class Training:
    """Everything a training run needs, built but not started."""

    trainer: Trainer
    data_loader: object
    start_iter: int
    max_iter: int
    eval_hook: EvalHook


def build_training(session: Session, resume: bool = True, checkpoints: bool = True) -> Training:
    """Model, optimizer, schedule, scaler, loader; resumes from OUTPUT_DIR's last checkpoint."""
    cfg = session.cfg
    output_dir = Path(cfg.OUTPUT_DIR)
    model = build_model(session)
    optimizer = make_optimizer(cfg, model)
    scheduler = make_lr_scheduler(cfg, optimizer)
    scaler = session.adapter.grad_scaler(session.precision)
    checkpointer = Checkpointer(session, model, optimizer, scheduler, scaler, output_dir)
    start_iter = 0
    if comm.is_main_process():
        for stale in remove_stale_temp_files(output_dir):
            logger.warning("removed %s, left by a save that was killed mid-write", stale)
    last = last_checkpoint(output_dir) if resume else None
    if last:
        start_iter = checkpointer.resume(last)
    elif cfg.MODEL.WEIGHT:
        _report_weights(cfg.MODEL.WEIGHT, load_weights(cfg.MODEL.WEIGHT, model, strict=False))
    model = wrap_distributed(model, session)
    trainer = Trainer(
        model,
        optimizer,
        scheduler,
        session.adapter,
        session.index,
        session.precision,
        scaler=scaler,
        checkpointer=checkpointer if checkpoints else None,
        checkpoint_period=cfg.SOLVER.CHECKPOINT_PERIOD,
    )
    data_loader = make_data_loader(
        cfg,
        is_train=True,
        is_distributed=session.distributed,
        start_iter=start_iter,
        static_compile=session.compile_shapes == "static",
    )
    eval_hook = EvalHook(session, cfg.SOLVER.TEST_PERIOD, cfg.SOLVER.TARGET_BBOX_AP)
    return Training(trainer, data_loader, start_iter, cfg.SOLVER.MAX_ITER, eval_hook)


def _report_weights(spec: str, report: LoadReport | None) -> None:
    """MODEL.WEIGHT loads non-strictly (a new head is normal); say plainly what did not fit."""
    if report is None:
        return
    if not report.loaded:
        raise CheckpointError(
            f"{spec}: no tensor matches the model (MODEL.WEIGHT of another architecture?); "
            f"{len(report.unexpected)} unexpected, {len(report.mismatched)} with another shape"
        )
    if report.ok:
        logger.info("initialised from %s: all %d tensors loaded", spec, len(report.loaded))
        return
    logger.warning("initialised from %s only in part; %s", spec, report.summary(limit=3))


def train(
    session: Session, resume: bool = True, hooks: TrainHooks | None = None
) -> tuple[Trainer, EvalHook]:
    """Train per the config, with periodic evaluation and the target-AP stop."""
    run = build_training(session, resume)
    hooks = hooks or TrainHooks()
    hooks.after_step.append(run.eval_hook)
    try:
        run.trainer.fit(run.data_loader, run.start_iter, run.max_iter, hooks, prefetch=True)
    except KeyboardInterrupt:
        raise TrainingInterrupted(_save_on_interrupt(run)) from None
    return run.trainer, run.eval_hook


def _save_on_interrupt(run: Training) -> str:
    """Keep the iterations done before Ctrl-C; says what was saved. A step the interrupt cut
    in half is not counted, so a resume repeats it."""
    trainer = run.trainer
    done = trainer.iteration
    if not (trainer.checkpointer and comm.is_main_process() and done > run.start_iter):
        return f"at iteration {done}; nothing new to save"
    trainer.checkpointer(f"model_{done:07d}", done)
    return f"at iteration {done}; saved model_{done:07d}.pth, run again to resume"


def iou_types(cfg) -> tuple[str, ...]:
    return ("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",)


def evaluate(session: Session, model: torch.nn.Module) -> dict[str, dict[str, float]] | None:
    """Evaluate on the first of DATASETS.TEST; {iou_type: stats} on rank 0."""
    cfg = session.cfg
    static = session.compile_shapes == "static"
    loaders = make_data_loader(cfg, False, session.distributed, static_compile=static)
    name = cfg.DATASETS.TEST[0]
    out = Path(cfg.OUTPUT_DIR) / "inference" / name if cfg.OUTPUT_DIR else None
    return inference(
        model,
        loaders[0],
        loaders[0].dataset,
        session.adapter,
        session.index,
        session.precision,
        iou_types(cfg),
        out,
        cfg.TEST.MASK_PASTE,
    )
