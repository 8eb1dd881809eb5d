"""The bodies of tools/train_net.py and tools/test_net.py: user errors become one message."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from rcnn.checkpoint import load_checkpoint
from rcnn.config import ConfigError, DatasetCatalogError, load_config
from rcnn.errors import USER_ERRORS, interrupted_line, one_line, unexpected_message
from rcnn.utils import comm
from rcnn.utils.logger import setup_logger
from rcnn.utils.signals import stop_signals_interrupt

from .run import build_model, evaluate, start_session, train
from .trainer import NonFiniteLossError


def _setup(args: argparse.Namespace):
    cfg = load_config(args.config_file, args.opts)
    session = start_session(cfg)
    if cfg.OUTPUT_DIR and comm.is_main_process():
        try:
            Path(cfg.OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
            (Path(cfg.OUTPUT_DIR) / "config.yaml").write_text(cfg.dump())
        except OSError as err:
            raise ConfigError(
                f"OUTPUT_DIR {cfg.OUTPUT_DIR}: not a writable folder ({err})"
            ) from None
    log = setup_logger("rcnn", cfg.OUTPUT_DIR or None, comm.get_rank())
    log.info(
        "device %s:%d, precision %s, %d process(es)",
        session.adapter.name,
        session.index,
        session.precision,
        comm.get_world_size(),
    )
    return cfg, session, log


def _guard(body, tool: str) -> int:
    """The tools' error boundary: one line on stderr, never a traceback on the console."""
    try:
        with stop_signals_interrupt():
            return body()
    except USER_ERRORS as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"error: {one_line(err)}; the last good checkpoint is kept", file=sys.stderr)
        return 3
    except KeyboardInterrupt as err:
        print(_stopped_line(err), file=sys.stderr)
        return 130
    except Exception as err:  # the boundary: anything else is a bug, reported with its traceback
        print(f"error: {unexpected_message(err, tool)}", file=sys.stderr)
        return 1


def _stopped_line(err: KeyboardInterrupt) -> str:
    """'interrupted (...)' for a user's stop. Under torchrun a SIGTERM comes from torchrun, which
    stops every worker when one fails as when it is stopped: the worker claims no interruption,
    torchrun's report names the cause."""
    line = interrupted_line(err)
    if not (comm.launched_by_torchrun() and line.startswith("interrupted (SIGTERM)")):
        return line
    kept = line.removeprefix("interrupted (SIGTERM)")
    return f"rank {comm.torchrun_rank()}: stopped by torchrun (SIGTERM){kept}"


def main_train(args: argparse.Namespace) -> int:
    def body() -> int:
        cfg, session, log = _setup(args)
        trainer, _ = train(session, resume=not args.no_resume)
        if not args.skip_test and cfg.DATASETS.TEST:
            scores = evaluate(session, trainer.model)
            if scores is not None:
                log.info("final: %s", json.dumps(scores))
        comm.shutdown()
        return 0

    return _guard(body, "train_net")


def main_test(args: argparse.Namespace) -> int:
    def body() -> int:
        cfg, session, log = _setup(args)
        model = build_model(session)
        ckpt = args.ckpt or cfg.MODEL.WEIGHT
        if ckpt:
            load_checkpoint(ckpt, model)
        else:
            logging.getLogger("rcnn").warning("no --ckpt and no MODEL.WEIGHT: random weights")
        scores = evaluate(session, model)
        if scores is not None:
            log.info("final: %s", json.dumps(scores))
        comm.shutdown()
        return 0

    return _guard(body, "test_net")


def _default_class_names(cfg) -> list[str] | None:
    """Category names of the config's test set when its annotation file is at hand."""
    from rcnn.config import DatasetCatalog

    from .predict import read_class_names

    for name in cfg.DATASETS.TEST:
        try:
            args = DatasetCatalog.get(name)["args"]
        except DatasetCatalogError:
            continue
        source = args.get("ann_file") or args.get("classes_file")
        if source and Path(source).is_file():
            return read_class_names(source)
    return None


def main_predict(args: argparse.Namespace) -> int:
    from .predict import draw_predictions, list_images, predict_images, read_class_names

    def body() -> int:
        cfg = load_config(args.config_file, args.opts)
        session = start_session(cfg)
        setup_logger("rcnn", None, comm.get_rank())
        paths = list_images(args.input)
        model = build_model(session)
        if args.ckpt:
            load_checkpoint(args.ckpt, model)
        names = read_class_names(args.classes) if args.classes else _default_class_names(cfg)
        preds = predict_images(
            model,
            cfg,
            paths,
            session.adapter,
            session.index,
            session.precision,
            names,
            args.score_threshold,
        )
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(preds, indent=1))
        if args.draw:
            for pred in preds:
                draw_predictions(
                    pred["path"],
                    pred,
                    Path(args.draw) / (Path(pred["path"]).stem + ".png"),
                    args.draw_threshold,
                )
        print(
            f"{len(preds)} image(s), {sum(len(p['detections']) for p in preds)} detections "
            f"-> {out}" + (f"; drawings in {args.draw}" if args.draw else "")
        )
        return 0

    return _guard(body, "predict_net")
