"""`python -m benchmark compare`: our detector vs its torchvision peer on the same inputs.

Both impls get the same tensors at the same size; iterations alternate between impls (A, B, A,
B, ...) so that load from other processes on a shared host hits both alike. Prints images/s per
impl (images / summed measured time), per-iteration percentiles, and the ratio rcnn/torchvision.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchmark.impls import IMPLS, Impl, build_impls, model_config, synthetic_batch
from benchmark.measure import distribution_ms
from benchmark.workload.args import SIZE_HELP, format_size, parse_size
from rcnn.device import resolve


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="images/s of our detector vs torchvision's, same inputs")
    p.add_argument(
        "--model",
        default="e2e_faster_rcnn_R_50_FPN_1x",
        help="config NAME (models/configs[/quick]/NAME.yaml) or a .yaml path",
    )
    p.add_argument(
        "--impl",
        action="append",
        choices=IMPLS,
        dest="impls",
        help="impl to run (repeat; default: rcnn and torchvision)",
    )
    p.add_argument("--mode", choices=("infer", "train"), default="infer")
    p.add_argument("--batch", type=int, default=1, help="images per iteration")
    p.add_argument(
        "--size",
        type=parse_size,
        default=(800, 1333),
        help=SIZE_HELP + "; every input image is MIN high and MAX wide",
    )
    p.add_argument("--iters", type=int, default=3, help="measured iterations per impl")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured iterations per impl")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument(
        "--different-weights",
        action="store_true",
        help="keep each impl's own init and our config's layout (default: ours loads "
        "the peer's weights in its layout, so both do the same work)",
    )
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time (the benchmark's measure) or this process's CPU time, which "
        "is steadier on a shared host",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def _step(impl: Impl, batch, mode: str, optimizer: torch.optim.Optimizer | None) -> None:
    if mode == "infer":
        with torch.inference_mode():
            impl.infer(batch)
        return
    losses = impl.losses(batch)
    total = sum(losses.values())
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()


def run(args: argparse.Namespace) -> int:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    adapter, index = resolve("cpu")
    impls_requested = args.impls or list(IMPLS)
    height, width = args.size  # landscape: the resize keeps MIN x MAX images as they are
    num_classes = model_config(args.model).MODEL.ROI_BOX_HEAD.NUM_CLASSES
    batch = synthetic_batch(args.batch, height, width, num_classes, seed=args.seed)
    impls = build_impls(
        args.model,
        impls_requested,
        (height, width),
        calibration=torch.stack(batch.images),
        same_weights=not args.different_weights,
        seed=args.seed,
    )

    optimizers = {}
    for impl in impls:
        impl.model.train(args.mode == "train")
        if args.mode == "train":
            params = [p for p in impl.model.parameters() if p.requires_grad]
            # A tiny lr keeps random weights stable; the work per step is the same.
            optimizers[impl.name] = torch.optim.SGD(params, lr=1e-5, momentum=0.9)

    clock = time.perf_counter if args.clock == "wall" else time.process_time
    times: dict[str, list[float]] = {impl.name: [] for impl in impls}
    for i in range(args.warmup + args.iters):
        for impl in impls:
            adapter.synchronize(index)
            start = clock()
            _step(impl, batch, args.mode, optimizers.get(impl.name))
            adapter.synchronize(index)
            if i >= args.warmup:
                times[impl.name].append(clock() - start)

    results = {
        name: {"images_per_s": args.batch * len(t) / sum(t), "step_time_ms": distribution_ms(t)}
        for name, t in times.items()
    }
    ratio = None
    if {"rcnn", "torchvision"} <= set(results):
        ratio = results["rcnn"]["images_per_s"] / results["torchvision"]["images_per_s"]
    setup = (
        f"{args.model} {args.mode} batch {args.batch} {format_size(args.size)} fp32 cpu, "
        f"{torch.get_num_threads()} threads, {args.iters} iters after {args.warmup} warm-up, "
        f"{args.clock} clock"
    )
    if args.json:
        print(
            json.dumps(
                {"setup": setup, "results": results, "ratio_rcnn_over_torchvision": ratio}, indent=2
            )
        )
        return 0
    print(setup)
    for name, r in results.items():
        p50 = r["step_time_ms"]["p50"]
        print(f"  {name:<12} {r['images_per_s']:8.3f} img/s   p50 {p50:9.1f} ms")
    if ratio is not None:
        print(f"  ratio rcnn/torchvision (images/s): {ratio:.3f}")
    return 0
