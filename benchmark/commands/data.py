"""`python -m benchmark data synth ...`: make a synthetic COCO-format set on local disk."""

from __future__ import annotations

import argparse
import time

from benchmark.errors import UsageError
from benchmark.record import check_writable_dir
from benchmark.workload.args import SIZE_HELP, parse_size
from rcnn.data.synthetic import SHAPE_NAMES, SyntheticSpec, generate


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="make or inspect datasets")
    verbs = parser.add_subparsers(dest="data_verb", required=True, metavar="DATA_VERB")
    synth = verbs.add_parser("synth", help="write a synthetic COCO-format set (JPEGs + jsons)")
    synth.add_argument("--out", required=True, help="root folder to write into")
    synth.add_argument("--images", type=int, required=True, help="number of train images")
    synth.add_argument(
        "--val-images",
        type=int,
        default=None,
        help="number of val images (default: a fifth of --images, at least 1)",
    )
    synth.add_argument(
        "--size",
        type=parse_size,
        default=(320, 320),
        help=SIZE_HELP + "; every image is MIN high and MAX wide (default 320x320)",
    )
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--classes",
        type=int,
        default=3,
        help=f"number of shape classes, 1..{len(SHAPE_NAMES)} ({', '.join(SHAPE_NAMES)})",
    )
    synth.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    val_images = args.val_images if args.val_images is not None else max(1, args.images // 5)
    try:
        spec = SyntheticSpec(
            train_images=args.images,
            val_images=val_images,
            width=args.size[1],
            height=args.size[0],
            seed=args.seed,
            num_classes=args.classes,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None
    check_writable_dir(args.out, "--out")
    start = time.perf_counter()
    written = generate(spec, args.out)
    elapsed = time.perf_counter() - start
    for split, path in written.items():
        print(f"{split}: {path}")
    print(
        f"wrote {spec.train_images} train + {spec.val_images} val images "
        f"({spec.width}x{spec.height}, seed {spec.seed}) in {elapsed:.1f}s"
    )
    return 0
