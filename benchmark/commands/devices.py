"""`python -m benchmark devices`: every backend, whether it is usable here, and what it offers."""

from __future__ import annotations

import argparse
import json

import torch

from rcnn.device import all_adapters
from rcnn.layers import preflight
from rcnn.utils.env import torchvision_version


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list backends, cards, precisions and op kernels")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead")
    p.add_argument(
        "--no-preflight", action="store_true", help="skip running the tiny op preflight on cards"
    )
    p.set_defaults(func=run)


def describe(check_ops: bool = True) -> list[dict]:
    """One row per backend; on each available one's card 0, the autocast probe of each
    precision and, with `check_ops`, the op preflight."""
    rows = []
    for adapter in all_adapters():
        reason = adapter.unavailable_reason()
        row = {
            "backend": adapter.name,
            "available": reason is None,
            "why_not": reason,
            "plugin": adapter.plugin,
            "plugin_version": adapter.plugin_version() if adapter.plugin else None,
            "dist_backend": adapter.dist_backend,
            "visible_devices_env": adapter.visible_devices_env,
            "cards": [],
            "precisions": [],
            "ops": {},
        }
        if reason is None:
            adapter.set_device(0)  # precisions are proven on the card this process binds
            row["cards"] = [
                {"index": c.index, "name": c.name, "memory_mb": c.memory_mb}
                for c in adapter.cards()
            ]
            row["precisions"] = list(adapter.supported_precisions())
            row["capabilities"] = {
                "sync_via_accelerator": adapter.can_sync_via_accelerator(),
                "memory_stats": adapter.memory_stats(),
                "pinned_memory": adapter.supports_pinned_memory(),
            }
            row["notes"] = adapter.notes()  # what it could not say, and refused precisions
            if check_ops:
                row["ops"] = preflight(adapter.torch_device(0))
        rows.append(row)
    return rows


def _fmt_cards(cards: list[dict]) -> str:
    if not cards:
        return "-"
    names = sorted({c["name"] or "unnamed card" for c in cards})  # a plug-in may not say
    mem = cards[0]["memory_mb"]
    mem_txt = f", {mem / 1024:.0f} GiB" if mem else ""
    return f"{len(cards)} x {' / '.join(names)}{mem_txt}"


def format_table(rows: list[dict]) -> str:
    header = ["backend", "status", "cards", "precisions", "dist", "ops (kernel|native)"]
    body = []
    for r in rows:
        status = "available" if r["available"] else f"no: {r['why_not']}"
        ops = ", ".join(f"{k}={v}" for k, v in r["ops"].items()) or "-"
        body.append(
            [
                r["backend"],
                status,
                _fmt_cards(r["cards"]),
                ",".join(r["precisions"]) or "-",
                r["dist_backend"],
                ops,
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=False)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)).rstrip()
        for row in [header, ["-" * w for w in widths], *body]
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    rows = describe(check_ops=not args.no_preflight)
    versions = {"torch": torch.__version__, "torchvision": torchvision_version()}
    if args.json:
        print(json.dumps({"versions": versions, "backends": rows}, indent=2))
        return 0
    print(f"torch {versions['torch']}, torchvision {versions['torchvision'] or 'not importable'}")
    for r in rows:
        if r["plugin_version"]:
            print(f"{r['plugin']} {r['plugin_version']}")
    print(format_table(rows))
    return 0
