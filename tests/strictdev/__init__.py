"""A strict test accelerator: a pure-Python out-of-tree PyTorch device named `strict`.

It is built the way vendor plug-ins (torch_mlu, torch_npu) are: PrivateUse1 renamed, a device
module registered as `torch.strict`, tensors whose `.device` is `strict:N`. Each op runs on CPU
storage, but the device fails where a real card fails: an op that mixes a `strict` tensor with a
CPU tensor (other than a 0-dim scalar) or with another card's tensor raises, as does a view op
the device has no kernel for (`unfold`, what `Tensor.repeat` lowers to). It has its own
`synchronize`, `device_count`, `current_device`/`set_device` and per-card RNG state. It has no
collective backend of its own.

It counts what a real card punishes: `torch.strict.counters()` returns {"synchronize", "d2h"
(item/_local_scalar_dense, tolist, copies to the host), "h2d", "h2d_pinned", "h2d_non_blocking",
"sync_ops" (ops a card blocks the host on: nonzero, boolean-mask indexing, unique*, bincount,
repeat_interleave without output_size, equal): int, "sync_ops_by_name": {aten name: int},
"cards_touched": sorted card indices}; `torch.strict.reset_counters()` zeroes them all.

Use it from the command line (tests/ on the path, the module named as the plug-in):

    PYTHONPATH=tests RCNN_DEVICE_PLUGIN=strictdev python -m benchmark infer --device strict ...

Environment flags, read at import:
    STRICTDEV_CARDS=N       number of cards (default 2)
    STRICTDEV_HIDE=a,b      optional capabilities the device does not offer: `name`
                            (get_device_name), `properties` (get_device_properties), `memory`
                            (the module's memory statistics), `bf16` (is_bf16_supported), `rng`
                            (RNG state), `synchronize` (the module's), `amp`
                            (get_amp_supported_dtype: torch.autocast raises AssertionError),
                            `seed` (manual_seed_all), `pinned` (page-locked host memory)
    STRICTDEV_MISSING=a,b   aten operators without a kernel, by base name (`sort`,
                            `convolution`): they raise torch's many-line NotImplementedError
    STRICTDEV_ACCELERATOR=  `full` (default: torch.accelerator synchronizes and reports memory
                            for the device, as for a compiled plug-in on torch >= 2.6), `sync`
                            (synchronize only) or `off`
    STRICTDEV_STRICT=1      raise when a process touches a card not its own: local rank r only
                            card r, a process without LOCAL_RANK (a launcher's parent) none
    STRICTDEV_VIOLATIONS=f  with STRICT, each such touch is also appended to file f
    STRICTDEV_AUTOCAST=     `ops` (default: conv/linear/matmul run in the autocast dtype),
                            `none` (autocast accepted but covers no op, so fp16/bf16 silently
                            run fp32) or `off` (autocast not implemented: ops under it raise)

Needs a torch with torch._C._acc (it registers the Python device guard and hooks; torch 2.14 has
it, torch 2.1 does not): without it a Python-only device cannot take tensors, so `import
strictdev` raises ImportError in one line and the `strictdev` test tier is skipped.
torch's Python device guard reports one card to the autograd engine, so backward runs on card 0
only; a multi-process training test puts every rank on strict:0.
"""

from __future__ import annotations

import os

from .device import NAME, install

__version__ = "0.1"
CARDS = int(os.environ.get("STRICTDEV_CARDS", "2"))
HIDDEN = frozenset(x for x in os.environ.get("STRICTDEV_HIDE", "").split(",") if x)
AUTOCAST = os.environ.get("STRICTDEV_AUTOCAST", "ops")
MISSING = frozenset(x for x in os.environ.get("STRICTDEV_MISSING", "").split(",") if x)
ACCELERATOR = os.environ.get("STRICTDEV_ACCELERATOR", "full")
STRICT = os.environ.get("STRICTDEV_STRICT", "") == "1"

install(CARDS, HIDDEN, AUTOCAST, MISSING, ACCELERATOR, STRICT)

__all__ = ["NAME", "install"]
