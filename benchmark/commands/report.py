"""`python -m benchmark report`: rebuild REPORT.md and plots/ from run records alone."""

from __future__ import annotations

import argparse
import os
import sys

from benchmark.errors import UsageError
from benchmark.record import check_writable_dir, read_records
from benchmark.report import build_report, splice_into_readme


def _default_results() -> str:
    return os.environ.get("RESULTS_DIR", "results")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="rebuild REPORT.md and plots from run records")
    p.add_argument(
        "--results",
        action="append",
        metavar="DIR",
        help="a results folder (its records.jsonl) or a .jsonl file; repeat to merge machines "
        "(default: $RESULTS_DIR or results)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="where REPORT.md and plots/ go (default: $RESULTS_DIR or results)",
    )
    p.add_argument(
        "--readme",
        metavar="FILE",
        help="also put the main tables into FILE, between its '<!-- benchmark report --readme: "
        "begin -->' and '... end -->' lines (how README.md's quickstart tables are made)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sources = args.results or [_default_results()]
    check_writable_dir(args.out or _default_results(), "--out")
    records, refused = read_records(sources)
    for problem in refused:
        print(f"refused: {problem}", file=sys.stderr)
    if not records:
        print(f"error: no valid records in {', '.join(sources)}", file=sys.stderr)
        return 1
    out = args.out or _default_results()
    report = build_report(records, out, sources=[str(s) for s in sources], refused=refused)
    print(report.summary)
    print(f"wrote {os.path.join(out, 'REPORT.md')} and {len(report.plots)} plots", file=sys.stderr)
    if args.readme:
        try:
            splice_into_readme(args.readme, report.summary, [str(s) for s in sources])
        except (OSError, ValueError) as err:
            raise UsageError(f"--readme {err}") from None
        print(f"updated the report block of {args.readme}", file=sys.stderr)
    return 0
