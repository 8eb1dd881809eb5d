"""The one ending of a measured train or infer run: the record's fields after the window.

Both verbs call `record_fields` on rank 0 with the timing fields `TimedRun.finish` gave; the
record itself and the summary line are written by `launch.execute`, for both alike.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from torch import nn

from benchmark.flops import run_flop_fields
from benchmark.workload.build import Workload
from benchmark.workload.identity import identity, key, work_config_hash
from benchmark.workload.lookup import weights_id
from rcnn.device import DeviceAdapter
from rcnn.engine.precision_check import ConvDtypeProbe
from rcnn.layers import kernels_used, preflight


@dataclass
class Run:
    """What a measured run's ending needs to know besides its numbers."""

    workload: Workload
    args: argparse.Namespace
    adapter: DeviceAdapter
    index: int


def record_fields(
    run: Run,
    timing: dict[str, Any],
    model: nn.Module,
    probe: ConvDtypeProbe,
    data: tuple[int, str | None],
    **measured: Any,
) -> dict[str, Any]:
    """`timing` and `measured` (accuracy, final_loss, ...) with what every run records: its
    data (`data`: images in the set, the weights it started from), ops, compute dtype, weights
    and FLOPs; a run that did not compute at the precision asked for fails with the reason."""
    workload, args, adapter, index = run.workload, run.args, run.adapter, run.index
    images, weights = data
    known = workload.record_fields()
    dataset = workload.data.record(images)
    weights_key = weights_id(weights)
    work = identity(
        work_config_hash(workload.cfg),
        workload.mode,
        (known["image_min_size"], known["image_max_size"]),
        dataset["name"],
        dataset["fingerprint"],
        weights_key,
        known["compile"],
        known["channels_last"],
    )
    fields = {
        **known,
        **timing,
        "dataset": dataset,
        "ops": kernels_used() or preflight(adapter.torch_device(index)),
        "compute_dtype": probe.dtype_name,
        "weights": weights or "random",
        "weights_id": weights_key,
        "workload": work,
        "workload_id": key(work),
        **measured,
    }
    # counted after the window, on a copy of the model: no count is ever timed
    fields.update(run_flop_fields(model, workload, fields, args, adapter, index))
    why = probe.mismatch(workload.cfg.MODEL.PRECISION, adapter.name)
    if why:  # measured, but not at the precision asked for: the cell fails and says why
        fields.update(status="failed", error=why)
    return fields
