"""The bodies of tools/train_net.py and tools/test_net.py: user errors become one message."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from rcnn.checkpoint import CheckpointError, load_checkpoint
from rcnn.config import ConfigError, DatasetCatalogError, load_config
from rcnn.data import DataError
from rcnn.device import DeviceError
from rcnn.utils import comm
from rcnn.utils.logger import setup_logger

from .run import build_model, start_session, test, train
from .trainer import NonFiniteLossError

USER_ERRORS = (ConfigError, DatasetCatalogError, DataError, DeviceError, CheckpointError)


def _setup(args: argparse.Namespace):
    cfg = load_config(args.config_file, args.opts)
    session = start_session(cfg)
    if cfg.OUTPUT_DIR and comm.is_main_process():
        Path(cfg.OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
        (Path(cfg.OUTPUT_DIR) / "config.yaml").write_text(cfg.dump())
    log = setup_logger("rcnn", cfg.OUTPUT_DIR or None, comm.get_rank())
    log.info(
        "device %s:%d, precision %s, %d process(es)",
        session.adapter.name,
        session.index,
        session.precision,
        comm.get_world_size(),
    )
    return cfg, session, log


def _guard(body) -> int:
    try:
        return body()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"error: {err}; the last good checkpoint is kept", file=sys.stderr)
        return 3


def main_train(args: argparse.Namespace) -> int:
    def body() -> int:
        cfg, session, log = _setup(args)
        trainer, _ = train(session, resume=not args.no_resume)
        if not args.skip_test and cfg.DATASETS.TEST:
            scores = test(session, trainer.model)
            if scores is not None:
                log.info("final: %s", json.dumps(scores))
        return 0

    return _guard(body)


def main_test(args: argparse.Namespace) -> int:
    def body() -> int:
        cfg, session, log = _setup(args)
        model = build_model(session)
        ckpt = args.ckpt or cfg.MODEL.WEIGHT
        if ckpt:
            load_checkpoint(ckpt, model)
        else:
            logging.getLogger("rcnn").warning("no --ckpt and no MODEL.WEIGHT: random weights")
        scores = test(session, model)
        if scores is not None:
            log.info("final: %s", json.dumps(scores))
        return 0

    return _guard(body)
