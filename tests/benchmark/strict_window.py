"""`python tests/benchmark/strict_window.py VERB ARGS`: the verb on the strict device, and the
device's own counters of the measured window (reset when it opens, read when it closes) printed
as the last line, in JSON: what the harness's conduct counts are checked against."""

from __future__ import annotations

import json
import sys

import strictdev  # noqa: F401 - the plug-in: registers torch.strict
import torch

from benchmark import conduct, measure
from benchmark.__main__ import main

seen: dict = {}
open_window, close = measure.TimedRun._open_window, conduct.ConductCounter.close


def opened(self: measure.TimedRun) -> None:
    open_window(self)
    torch.strict.reset_counters()


def closed(self: conduct.ConductCounter, iterations: int) -> conduct.Counts:
    seen.update(torch.strict.counters())
    return close(self, iterations)


measure.TimedRun._open_window = opened
conduct.ConductCounter.close = closed
if __name__ == "__main__":
    code = main(sys.argv[1:])
    print(json.dumps({"exit": code, **seen}))
