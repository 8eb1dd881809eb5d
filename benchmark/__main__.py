"""`python -m benchmark VERB ...`: the harness's single entry point.

Each verb lives in its own module under `benchmark.commands` and exposes
`add_parser(subparsers)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from benchmark.errors import USER_ERRORS
from rcnn.errors import interrupted_line, one_line, unexpected_message
from rcnn.utils.signals import stop_signals_interrupt

VERBS = (
    "devices",
    "ops",
    "data",
    "train",
    "infer",
    "loader",
    "profile",
    "sweep",
    "verify",
    "compare",
    "report",
    "comm",
    "overhead",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        importlib.import_module(f"benchmark.commands.{verb}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The harness's error boundary: every ending is one line on stderr, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        with stop_signals_interrupt():
            return args.func(args)
    except USER_ERRORS as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(interrupted_line(err), file=sys.stderr)
        return 130
    except Exception as err:  # a bug: one line, and the traceback in a file
        print(f"error: {unexpected_message(err, 'benchmark')}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
