"""What one measured run needs before it starts: its arguments, config, data and record fields.

`train` and `infer` share all of it, and so does the launcher: the parent of a multi-card run
builds the same workload first (so a bad config, dataset or device fails before torchrun starts)
and hands the workers the same arguments back (`to_argv`).

Data (`--data`):
    synthetic[:N]          generated on first use into RESULTS/cache/synthetic/<key>/ (key: split,
                           image size, image count, seed, classes) and reused after; N images per
                           split (default 64 train, 64 val, more if a run needs more)
    coco[:DIR]             DIR/{train2017,val2017}, DIR/annotations/instances_{train,val}2017.json
                           (default DIR: $DATASET_DIR/coco)
    txt:LIST[:CLASSES]     a text list (images relative to LIST's folder); CLASSES defaults to
                           classes.txt beside LIST; the same set trains and tests
    config                 the config's own DATASETS.TRAIN / DATASETS.TEST
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import shlex
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from yacs.config import CfgNode

from benchmark.measure import IterationTimer, Window
from rcnn.config import DatasetCatalog, load_config
from rcnn.data.synthetic import SHAPE_NAMES, SyntheticSpec, ann_file, generate_split, img_dir
from rcnn.device import PRECISIONS, DeviceAdapter

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIRS = (ROOT / "models" / "configs", ROOT / "models" / "configs" / "quick")
SYNTHETIC_IMAGES = 64  # per split, unless a run needs more
SYNTHETIC_SEED = 0
SYNTHETIC_CLASSES = 3  # the quick configs' classes; larger heads simply see fewer
DEFAULTS = {  # per mode: batch per card, warm-up and measured iterations (None: one test pass)
    "train": {"batch": 2, "warmup": 5, "iters": 20},
    "infer": {"batch": 1, "warmup": 2, "iters": None},
}


MULTI_NODE = ("node_rank", "master_addr", "master_port")  # meaningless on one node


class UsageError(ValueError):
    """A command line the harness cannot run; the message says what to change."""


# -- arguments -------------------------------------------------------------------------------


def _size(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must be MINxMAX, e.g. 800x1333, got {text!r}"
        ) from None
    if not 32 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"size needs 32 <= MIN <= MAX, got {text!r}")
    return lo, hi


def _cards(text: str) -> int | str:
    if text == "all":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"cards must be a positive number or 'all', got {text!r}")
    return int(text)


def add_run_arguments(parser: argparse.ArgumentParser, mode: str) -> None:
    """The options of one measured run (train or infer), then trailing KEY VALUE overrides."""
    d = DEFAULTS[mode]
    parser.add_argument(
        "--model",
        required=True,
        help="config NAME (models/configs[/quick]/NAME.yaml) or a .yaml path",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mlu, npu, ...")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument(
        "--cards",
        type=_cards,
        default=1,
        help="cards (processes) per node, or 'all' visible; >1 runs torchrun. "
        "On CPU a card is a process, at most one per core",
    )
    parser.add_argument("--nodes", type=int, default=1, help="nodes of a multi-node run")
    parser.add_argument("--node-rank", type=int, default=0)
    parser.add_argument("--master-addr", default="127.0.0.1")
    parser.add_argument("--master-port", type=int, default=29500)
    parser.add_argument(
        "--batch",
        type=int,
        default=d["batch"],
        help=f"images per card per step (default {d['batch']}); the global batch is batch x cards",
    )
    parser.add_argument("--size", type=_size, help="image MINxMAX size, overriding INPUT.*")
    parser.add_argument(
        "--data",
        default="synthetic",
        help="synthetic[:N] | coco[:DIR] | txt:LIST[:CLASSES] | config",
    )
    parser.add_argument(
        "--iters",
        type=int,
        default=d["iters"],
        help="measured iterations per repeat"
        + (" (default: one pass over the test set)" if mode == "infer" else ""),
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=d["warmup"],
        help="iterations run before measuring (not in the statistics)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="measured windows (median, spread)")
    parser.add_argument("--ckpt", help="weights to load (a checkpoint file or catalog name)")
    parser.add_argument(
        "--results",
        default=os.environ.get("RESULTS_DIR") or "results",
        help="results folder (default $RESULTS_DIR or results)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", help=argparse.SUPPRESS)
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        metavar="KEY VALUE",
        help="config overrides, e.g. MODEL.RPN.POST_NMS_TOP_N_TEST 500",
    )


def to_argv(args: argparse.Namespace, options: Iterable[str] = ()) -> list[str]:
    """The arguments that rebuild `args` (every option explicit, overrides last).

    `options` names verb-specific options (dest names) to carry beside the shared ones."""
    shared = [
        "model",
        "device",
        "precision",
        "cards",
        "nodes",
        "node_rank",
        "master_addr",
        "master_port",
        "batch",
        "size",
        "data",
        "iters",
        "warmup",
        "repeats",
        "ckpt",
        "results",
        *options,
        "run_id",
    ]
    argv = []
    for dest in shared:
        value = getattr(args, dest, None)
        if value is None or value is False or (dest in MULTI_NODE and args.nodes == 1):
            continue
        flag = "--" + dest.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif dest == "size":
            argv += [flag, f"{value[0]}x{value[1]}"]
        else:
            argv += [flag, str(value)]
    if getattr(args, "worker", False):
        argv.append("--worker")
    return [*argv, *args.opts]


def command_line(verb: str, args: argparse.Namespace, options: Iterable[str] = ()) -> str:
    """The record's `command`: the run as a user would type it, without internal flags."""
    argv = to_argv(argparse.Namespace(**{**vars(args), "worker": False, "run_id": None}), options)
    return shlex.join(["python", "-m", "benchmark", verb, *argv])


def check_counts(args: argparse.Namespace) -> None:
    for name in ("batch", "warmup", "repeats", "nodes"):
        low = 0 if name == "warmup" else 1
        if getattr(args, name) < low:
            raise UsageError(f"--{name} must be >= {low}, got {getattr(args, name)}")
    if args.iters is not None and args.iters < 1:
        raise UsageError(f"--iters must be >= 1, got {args.iters}")


# -- config ----------------------------------------------------------------------------------


def config_path(model: str) -> Path:
    """A config NAME from models/configs (then quick/), or a path to a .yaml file."""
    given = Path(model)
    if given.suffix in (".yaml", ".yml") or os.sep in model:
        if not given.is_file():
            raise UsageError(f"--model {model}: config file not found")
        return given
    for folder in CONFIG_DIRS:
        path = folder / f"{model}.yaml"
        if path.is_file():
            return path
    known = sorted(p.stem for folder in CONFIG_DIRS for p in folder.glob("*.yaml"))
    raise UsageError(f"--model {model}: no such config; known: {', '.join(known)}")


def config_hash(cfg: CfgNode) -> str:
    return hashlib.sha1(cfg.dump().encode()).hexdigest()


def _size_overrides(size: tuple[int, int] | None) -> list[str]:
    if size is None:
        return []
    lo, hi = size
    return [
        "INPUT.MIN_SIZE_TRAIN",
        f"({lo},)",
        "INPUT.MAX_SIZE_TRAIN",
        str(hi),
        "INPUT.MIN_SIZE_TEST",
        str(lo),
        "INPUT.MAX_SIZE_TEST",
        str(hi),
    ]


# -- data ------------------------------------------------------------------------------------


def _fingerprint(annotations: Path) -> str:
    """sha1 of the annotation (or list) file: the same bytes describe the same images."""
    digest = hashlib.sha1()
    with open(annotations, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha1:{digest.hexdigest()[:16]}"


def synthetic_split(cache: Path, split: str, spec: SyntheticSpec) -> tuple[Path, Path]:
    """(image folder, annotation json) of a cached synthetic split, generated on first use.

    Generated beside its final place and renamed into it, so concurrent runs (the ranks of one
    run, or a sweep's cells) never see half a set; the loser of a race drops its copy."""
    count = spec.train_images if split == "train" else spec.val_images
    key = f"{split}-{spec.width}x{spec.height}-n{count}-seed{spec.seed}-{spec.num_classes}cls"
    root = cache / "synthetic" / key
    if not ann_file(root, split).is_file():
        tmp = root.with_name(f".{key}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        generate_split(spec, tmp, split)
        try:
            os.rename(tmp, root)
        except OSError:  # another process finished first: its set is the same bytes
            shutil.rmtree(tmp, ignore_errors=True)
    return img_dir(root, split), ann_file(root, split)


@dataclass(frozen=True)
class DataSetup:
    """Config overrides that point DATASETS at the data, and what the record says about it."""

    overrides: list[str]
    name: str
    fingerprint: str | None

    def record(self, images: int | None) -> dict[str, Any]:
        return {"name": self.name, "images": images, "fingerprint": self.fingerprint}


def _register_coco(name: str, images: Path, annotations: Path, what: str) -> None:
    for path in (images, annotations):
        if not path.exists():
            raise UsageError(
                f"{what}: {path} not found; expected the COCO 2017 layout "
                "train2017/, val2017/, annotations/instances_{train,val}2017.json"
            )
    DatasetCatalog.register(name, str(images), str(annotations), replace=True)


def _split_data(
    spec: str, split: str, cfg: CfgNode, results: Path, images_needed: int
) -> tuple[str, str, str | None]:
    """(catalog name, dataset name, fingerprint) of one split of `spec`, made and registered."""
    kind, _, rest = spec.partition(":")
    if kind == "synthetic":
        if rest and not (rest.isdigit() and int(rest) > 0):
            raise UsageError(f"--data {spec}: the image count after 'synthetic:' must be > 0")
        count = max(int(rest) if rest else SYNTHETIC_IMAGES, images_needed)
        lo, hi = cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST
        width = min(hi, round(lo * 4 / 3))  # COCO's usual 4:3 landscape at the test size
        classes = min(SYNTHETIC_CLASSES, len(SHAPE_NAMES), cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES - 1)
        synth = SyntheticSpec(
            train_images=count if split == "train" else 0,
            val_images=count if split == "val" else 0,
            width=width,
            height=lo,
            seed=SYNTHETIC_SEED,
            num_classes=classes,
        )
        images, annotations = synthetic_split(results / "cache", split, synth)
        name = f"bench_{annotations.parent.parent.name}"
        DatasetCatalog.register(name, str(images), str(annotations), replace=True)
        return name, "synthetic", _fingerprint(annotations)
    if kind == "coco":
        root = Path(rest) if rest else Path(DatasetCatalog.data_dir()) / "coco"
        images = root / f"{split}2017"
        annotations = root / "annotations" / f"instances_{split}2017.json"
        name = f"bench_coco_{split}2017"
        _register_coco(name, images, annotations, f"--data {spec}")
        return name, "coco_2017", _fingerprint(annotations)
    if kind == "txt" and rest:
        list_file, _, classes = rest.partition(":")
        list_path = Path(list_file)
        classes_path = Path(classes) if classes else list_path.parent / "classes.txt"
        for path in (list_path, classes_path):
            if not path.is_file():
                raise UsageError(f"--data {spec}: {path} not found")
        name = f"bench_txt_{list_path.stem}"
        DatasetCatalog.register_txt_list(
            name, str(list_path), str(list_path.parent), str(classes_path), replace=True
        )
        return name, f"txt:{list_path.name}", _fingerprint(list_path)
    raise UsageError(
        f"--data {spec}: expected synthetic[:N], coco[:DIR], txt:LIST[:CLASSES] or config"
    )


def prepare_data(
    spec: str, mode: str, cfg: CfgNode, results: Path, images_needed: int, evaluate: bool = False
) -> DataSetup:
    """Make (synthetic) or find the data of `spec`, register it, say how the config uses it:
    the training split for training (and the test split too when it `evaluate`s), the test
    split for inference. The record describes the split that is measured."""
    splits = (
        ["train", "val"]
        if mode == "train" and evaluate
        else ["train" if mode == "train" else "val"]
    )
    if spec == "config":
        names = cfg.DATASETS.TRAIN if mode == "train" else cfg.DATASETS.TEST
        return DataSetup([], ",".join(names), None)
    overrides, described = [], []
    for split in splits:
        name, dataset, fingerprint = _split_data(spec, split, cfg, results, images_needed)
        key = "DATASETS.TRAIN" if split == "train" else "DATASETS.TEST"
        overrides += [key, f"('{name}',)"]
        described.append((dataset, fingerprint))
    return DataSetup(overrides, *described[0])


# -- the workload ----------------------------------------------------------------------------


def max_cards(adapter: DeviceAdapter) -> int:
    """How many cards a run may ask for here: the visible cards, or on a host without an
    accelerator one process per core (a 'card' on CPU is a gloo process)."""
    return adapter.device_count() if adapter.is_accelerator else (os.cpu_count() or 1)


def cards_per_node(args: argparse.Namespace, adapter: DeviceAdapter) -> int:
    """--cards as a number: 'all' is every visible card (one process on CPU: all its cores)."""
    if args.cards == "all":
        return adapter.device_count()
    limit = max_cards(adapter)
    if args.cards > limit:
        unit = "visible cards" if adapter.is_accelerator else "cores (one process per core)"
        raise UsageError(f"--cards {args.cards}: this machine has {limit} {adapter.name} {unit}")
    return args.cards


@dataclass
class Workload:
    """One measured run, resolved: its config (every override applied) and record fields."""

    mode: str
    model: str
    cfg: CfgNode
    cards: int  # all processes, every node
    nodes: int
    batch_per_card: int
    data: DataSetup

    @property
    def global_batch(self) -> int:
        return self.batch_per_card * self.cards

    def record_fields(self) -> dict[str, Any]:
        inp = self.cfg.INPUT
        train = self.mode == "train"
        return {
            "mode": self.mode,
            "model": self.model,
            "cards": self.cards,
            "nodes": self.nodes,
            "precision": self.cfg.MODEL.PRECISION,
            "batch_per_card": self.batch_per_card,
            "global_batch": self.global_batch,
            "image_min_size": max(inp.MIN_SIZE_TRAIN) if train else inp.MIN_SIZE_TEST,
            "image_max_size": inp.MAX_SIZE_TRAIN if train else inp.MAX_SIZE_TEST,
            "config_hash": config_hash(self.cfg),
            "seed": self.cfg.SEED,
        }


def planned_iterations(args: argparse.Namespace) -> int | None:
    """Warm-up plus every repeat's measured iterations (None: one inference pass decides)."""
    return None if args.iters is None else args.warmup + args.iters * args.repeats


def build_workload(
    mode: str, args: argparse.Namespace, cards: int, run_dir: Path, extra: Iterable[str] = ()
) -> Workload:
    """Config with the run's overrides (`extra` last), then the user's; the data made and
    registered."""
    path = config_path(args.model)
    world = cards * args.nodes
    batch = args.batch * world  # the config's batch keys are global; weak scaling keeps per-card
    ours = [
        "MODEL.DEVICE",
        args.device,
        "MODEL.PRECISION",
        args.precision,
        "SOLVER.IMS_PER_BATCH",
        str(batch),
        "TEST.IMS_PER_BATCH",
        str(batch),
        "OUTPUT_DIR",
        str(run_dir),
        *_size_overrides(args.size),
        *extra,
    ]
    planned = planned_iterations(args)
    if mode == "train":
        ours += ["SOLVER.MAX_ITER", str(planned)]
        if args.ckpt:
            ours += ["MODEL.WEIGHT", args.ckpt]
    first = load_config(path, [*ours, *args.opts])
    evaluate = first.SOLVER.TEST_PERIOD > 0  # training that evaluates needs the test split
    data = prepare_data(args.data, mode, first, Path(args.results), batch, evaluate)
    cfg = load_config(path, [*ours, *data.overrides, *args.opts])
    global_batch = cfg.SOLVER.IMS_PER_BATCH if mode == "train" else cfg.TEST.IMS_PER_BATCH
    if global_batch % world:
        raise UsageError(f"the global batch {global_batch} does not split over {world} cards")
    return Workload(mode, path.stem, cfg, world, args.nodes, global_batch // world, data)


# -- measured loops --------------------------------------------------------------------------


class RepeatedTimers:
    """Repeats of one measurement over one stream of batches: repeat 0 warms up first, each
    repeat is its own window. Use `iterate` for the batches and `step_end` after each one."""

    def __init__(
        self,
        synchronize: Callable[[], None],
        warmup: int,
        iters: int | None,
        repeats: int,
        clock: Callable[[], float] | None = None,
    ) -> None:
        extra = {"clock": clock} if clock is not None else {}
        self.timers = [
            IterationTimer(synchronize, warmup if r == 0 else 0, **extra) for r in range(repeats)
        ]
        self.iters = iters
        self.warmup = warmup
        self._current = 0

    def iterate(self, batches: Iterable[T]) -> Iterator[T]:
        stream = iter(batches)
        for r, timer in enumerate(self.timers):
            self._current = r
            count = None if self.iters is None else self.iters + timer.warmup
            yield from timer.iterate(itertools.islice(stream, count))

    def step_end(self, images: int) -> None:
        self.timers[self._current].step_end(images)

    @property
    def warmup_done(self) -> bool:
        """True right after the last warm-up iteration ended (the measured window opens)."""
        first = self.timers[0]
        return self._current == 0 and first.iterations == self.warmup

    def windows(self) -> list[Window]:
        return [t.window() for t in self.timers]
