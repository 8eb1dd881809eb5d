"""The `strict` device: a wrapper tensor over CPU storage and the `torch.strict` module."""

from __future__ import annotations

import types
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map

from .conduct import Conduct, blocking_op, install_accelerator, install_pinning

NAME = "strict"
# torchvision registers no kernels for an out-of-tree device, so its ops raise here too.
# aten's repeat lowers to the view op unfold, which an out-of-tree backend cannot fall back on
_NO_KERNEL = {"aten::unfold", "aten::repeat"}
_CROSS_DEVICE = {"aten::copy_", "aten::_to_copy", "aten::_copy_from"}
_AUTOCAST_OPS = (
    "conv1d",
    "conv2d",
    "conv_transpose2d",
    "linear",
    "matmul",
    "mm",
    "addmm",
    "bmm",
    "baddbmm",
)


class _State:
    """Everything the device keeps per process: cards, current card, RNG and memory counters."""

    def __init__(self, cards: int, missing: frozenset[str] = frozenset(), strict: bool = False):
        self.cards = cards
        self.missing = missing  # aten operators (base names) the device has no kernel for
        self.conduct = Conduct(NAME, strict)
        self.current = 0
        self.generators = [torch.Generator() for _ in range(cards)]
        self.allocated = [0] * cards
        self.peak = [0] * cards
        self.live: dict[tuple[int, int], list[int]] = {}  # (card, data_ptr) -> [bytes, refs]

    def card(self, device: torch.device | str | int | None) -> int:
        if device is None:
            return self.current
        if isinstance(device, int):
            index = device
        else:
            index = torch.device(device).index
            index = self.current if index is None else index
        if not 0 <= index < self.cards:
            raise RuntimeError(f"{NAME}:{index}: invalid device ordinal ({self.cards} cards)")
        return index

    def track(self, tensor: torch.Tensor, card: int, elem: torch.Tensor) -> None:
        storage = elem.untyped_storage()
        key = (card, storage.data_ptr())
        entry = self.live.get(key)
        if entry is None:
            entry = self.live[key] = [storage.nbytes(), 0]
            self.allocated[card] += entry[0]
            self.peak[card] = max(self.peak[card], self.allocated[card])
        entry[1] += 1
        self.conduct.touch(card)
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: tuple[int, int]) -> None:
        entry = self.live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del self.live[key]
            self.allocated[key[0]] -= entry[0]


STATE = _State(0)


class StrictTensor(torch.Tensor):
    """A tensor on `strict:N`; `elem` is its CPU storage, never seen by the caller."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor, card: int) -> StrictTensor:
        out = torch.Tensor._make_wrapper_subclass(
            cls,
            elem.size(),
            strides=elem.stride(),
            storage_offset=elem.storage_offset(),
            dtype=elem.dtype,
            layout=elem.layout,
            device=torch.device(NAME, card),
            requires_grad=False,
            # sizes and strides are asked of the CPU storage: out= ops resize it after creation
            dispatch_sizes_strides_policy="sizes",
        )
        out.elem = elem
        STATE.track(out, card, elem)
        return out

    def tolist(self) -> Any:  # type: ignore[override]
        # torch refuses tolist() on any subclass; a real card's tensor copies to the host
        return self.cpu().tolist()

    def __repr__(self) -> str:  # type: ignore[override]
        return f"{self.elem!r} on {self.device}"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _dispatch(func, args, kwargs or {})


def _cards_and_host(values: Iterable[Any]) -> tuple[set[int], bool]:
    cards, host = set(), False
    for v in values:
        if isinstance(v, StrictTensor):
            cards.add(v.device.index)
        elif isinstance(v, torch.Tensor) and v.device.type == "cpu" and v.dim() > 0:
            host = True
    return cards, host


def _with_generator(
    func: torch._ops.OpOverload, args: tuple, kwargs: dict, card: int
) -> tuple[tuple, dict]:
    """Random ops draw from the card's own generator, not the host's."""
    for i, arg in enumerate(func._schema.arguments):
        if arg.name != "generator":
            continue
        if i < len(args):
            if args[i] is None:
                args = (*args[:i], STATE.generators[card], *args[i + 1 :])
        elif kwargs.get("generator") is None:
            kwargs = {**kwargs, "generator": STATE.generators[card]}
    return args, kwargs


_METADATA = {
    "aten::sym_size": lambda t: t.size(),
    "aten::sym_stride": lambda t: t.stride(),
    "aten::dim": lambda t: t.dim(),
    "aten::sym_numel": lambda t: t.numel(),
    "aten::sym_storage_offset": lambda t: t.storage_offset(),
    "aten::is_contiguous": lambda t: t.is_contiguous(),
}


def _missing_kernel(func: torch._ops.OpOverload) -> NotImplementedError:
    """What torch raises for an operator a plug-in registered no kernel for: many lines."""
    return NotImplementedError(
        f"Could not run '{func.name()}' with arguments from the '{NAME}' backend. This could be "
        "because the operator doesn't exist for this backend, or was omitted during the "
        "selective/custom build process (if using custom build).\n\n"
        + "\n".join(f"{key}: registered at /aten/src/ATen/Register{key}.cpp" for key in _KEYS)
    )


_KEYS = ("CPU", "Meta", "BackendSelect", "Python", "ADInplaceOrView", "AutogradOther", "Tracer")


def _count_transfer(name: str, args: tuple, kwargs: dict) -> None:
    """Count the host reads, blocking ops and host-to-device copies a real card would make."""
    conduct = STATE.conduct
    if blocking_op(name, args, kwargs):
        conduct.blocked(name)
    elif name == "aten::_local_scalar_dense":
        conduct.device_to_host()
    elif name == "aten::_to_copy":
        target = kwargs.get("device")
        if isinstance(args[0], StrictTensor) and target is not None and target.type == "cpu":
            conduct.device_to_host()
    elif name == "aten::copy_":
        dst, src = args[0], args[1]
        non_blocking = args[2] if len(args) > 2 else kwargs.get("non_blocking", False)
        if isinstance(dst, StrictTensor) and not isinstance(src, StrictTensor):
            conduct.host_to_device(src, non_blocking)
        elif isinstance(src, StrictTensor) and not isinstance(dst, StrictTensor):
            conduct.device_to_host()


def _dispatch(func: torch._ops.OpOverload, args: tuple, kwargs: dict) -> Any:
    name = func._schema.name
    if name in _METADATA:
        return _METADATA[name](args[0].elem)
    if name in _NO_KERNEL or name.startswith("torchvision::"):
        raise NotImplementedError(f"{name} has no kernel on the {NAME} device and no CPU fallback")
    if name.partition("::")[2] in STATE.missing:
        raise _missing_kernel(func)
    _count_transfer(name, args, kwargs)
    flat, _ = tree_flatten((args, kwargs))
    cards, host = _cards_and_host(flat)
    if name not in _CROSS_DEVICE and (len(cards) > 1 or (cards and host)):
        found = sorted({f"{NAME}:{c}" for c in cards} | ({"cpu"} if host else set()))
        raise RuntimeError(
            f"Expected all tensors to be on the same device, but found at least two devices, "
            f"{' and '.join(found)}! (op {name})"
        )
    target = kwargs.get("device")
    if isinstance(target, torch.device):
        card = STATE.card(target) if target.type == NAME else None
    else:
        card = min(cards) if cards else None
    unwrap = {id(v.elem): v for v in flat if isinstance(v, StrictTensor)}

    def to_host(x: Any) -> Any:
        if isinstance(x, StrictTensor):
            return x.elem
        if isinstance(x, torch.device) and x.type == NAME:
            return torch.device("cpu")
        return x

    args, kwargs = tree_map(to_host, args), tree_map(to_host, kwargs)
    if cards:
        args, kwargs = _with_generator(func, args, kwargs, min(cards))
    out = func(*args, **kwargs)

    def wrap(x: Any) -> Any:
        if not isinstance(x, torch.Tensor):
            return x
        if id(x) in unwrap:  # in-place and out= ops return their own argument
            return unwrap[id(x)]
        if card is None or x.device.type != "cpu" or any(x is a for a in flat):
            return x
        return StrictTensor(x, card)

    return tree_map(wrap, out)


def _empty(size, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    fmt = memory_format or torch.contiguous_format
    return StrictTensor(torch.empty(size, dtype=dtype, memory_format=fmt), STATE.card(device))


def _empty_strided(size, stride, dtype=None, layout=None, device=None, pin_memory=None):
    return StrictTensor(torch.empty_strided(size, stride, dtype=dtype), STATE.card(device))


def _host(t: torch.Tensor) -> torch.Tensor:
    return t.elem if isinstance(t, StrictTensor) else t


def _copy_from(src: torch.Tensor, dst: torch.Tensor, non_blocking: bool = False) -> torch.Tensor:
    """The host<->card copy that torch.tensor(..., device=) makes below the Python key."""
    if isinstance(dst, StrictTensor) and not isinstance(src, StrictTensor):
        STATE.conduct.host_to_device(src, non_blocking)
    _host(dst).copy_(_host(src))
    return dst


def _autocast_kernel(op: torch._ops.OpOverloadPacket) -> Callable:
    """Run `op` with its floating tensors cast to the autocast dtype, like a card's autocast."""
    key = torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastPrivateUse1)

    def kernel(*args: Any, **kwargs: Any) -> Any:
        dtype = torch.get_autocast_dtype(NAME)

        def cast(x: Any) -> Any:
            if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != torch.float64:
                return x.to(dtype)
            return x

        with torch._C._ExcludeDispatchKeyGuard(key):
            return op(*tree_map(cast, args), **tree_map(cast, kwargs))

    return kernel


_LIBRARIES: list[torch.library.Library] = []  # registrations live as long as their library


def _register_kernels(autocast: str) -> None:
    aten = torch.library.Library("aten", "IMPL")
    aten.impl("empty.memory_format", _empty, "PrivateUse1")
    aten.impl("empty_strided", _empty_strided, "PrivateUse1")
    aten.impl("_copy_from", _copy_from, "PrivateUse1")
    _LIBRARIES.append(aten)
    if autocast == "off":
        return
    fallback = torch.library.Library("_", "IMPL")
    fallback.fallback(torch.library.fallthrough_kernel, "AutocastPrivateUse1")
    _LIBRARIES.append(fallback)
    if autocast == "ops":
        for op in _AUTOCAST_OPS:
            packet = getattr(torch.ops.aten, op)
            for overload in packet.overloads():
                aten.impl(
                    getattr(packet, overload)._schema.name.split("::")[1]
                    + ("" if overload == "default" else f".{overload}"),
                    _autocast_kernel(getattr(packet, overload)),
                    "AutocastPrivateUse1",
                )


def _module(hidden: frozenset[str]) -> types.ModuleType:
    """`torch.strict`: the calls a vendor's device module offers (torch.cuda's shape)."""
    mod = types.ModuleType(f"torch.{NAME}")
    mod.__version__ = "0.1-strict"
    mod.is_available = lambda: STATE.cards > 0
    mod.is_initialized = lambda: True
    mod._is_in_bad_fork = lambda: False
    mod.device_count = lambda: STATE.cards
    mod.current_device = lambda: STATE.current

    def set_device(device: torch.device | str | int) -> None:
        STATE.current = STATE.card(device)
        STATE.conduct.touch(STATE.current)  # a real card makes its context here

    def synchronize(device: torch.device | str | int | None = None) -> None:
        STATE.conduct.synchronized(STATE.card(device))

    def manual_seed(seed: int) -> None:
        STATE.generators[STATE.current].manual_seed(seed)

    def manual_seed_all(seed: int) -> None:
        for gen in STATE.generators:
            gen.manual_seed(seed)

    mod.set_device = set_device
    mod.manual_seed = manual_seed
    mod.counters = STATE.conduct.counters
    mod.reset_counters = STATE.conduct.reset
    if "synchronize" not in hidden:
        mod.synchronize = synchronize
    if "seed" not in hidden:
        mod.manual_seed_all = manual_seed_all
    if "amp" not in hidden:  # without it torch.autocast(NAME) raises AssertionError
        mod.get_amp_supported_dtype = lambda: [torch.float16, torch.bfloat16]
    if "rng" not in hidden:
        mod.get_rng_state = lambda device=None: STATE.generators[STATE.card(device)].get_state()
        mod.set_rng_state = lambda state, device=None: STATE.generators[
            STATE.card(device)
        ].set_state(state)
    if "name" not in hidden:
        mod.get_device_name = lambda device=None: f"Strict test card {STATE.card(device)}"
    if "properties" not in hidden:
        mod.get_device_properties = lambda device=None: types.SimpleNamespace(
            name=f"Strict test card {STATE.card(device)}", total_memory=4 * 2**30
        )
    if "memory" not in hidden:
        mod.memory_allocated = lambda device=None: STATE.allocated[STATE.card(device)]
        mod.max_memory_allocated = lambda device=None: STATE.peak[STATE.card(device)]

        def reset_peak_memory_stats(device: torch.device | str | int | None = None) -> None:
            card = STATE.card(device)
            STATE.peak[card] = STATE.allocated[card]

        mod.reset_peak_memory_stats = reset_peak_memory_stats
    if "bf16" not in hidden:
        mod.is_bf16_supported = lambda including_emulation=True: True
    return mod


def _install_accelerator(mode: str) -> None:
    """torch.accelerator for this device: `full` (synchronize and memory statistics), `sync`
    (synchronize only) or `off` (neither: torch's own calls fail for a Python-only device)."""
    if mode == "off":
        return

    def sync(device: object = None) -> None:
        STATE.conduct.synchronized(STATE.card(device))

    def reset(device: object = None) -> None:
        card = STATE.card(device)
        STATE.peak[card] = STATE.allocated[card]

    memory = {
        "memory_allocated": lambda device=None: STATE.allocated[STATE.card(device)],
        "max_memory_allocated": lambda device=None: STATE.peak[STATE.card(device)],
        "reset_peak_memory_stats": reset,
    }
    install_accelerator(NAME, {"synchronize": sync, **(memory if mode == "full" else {})})


def install(
    cards: int = 2,
    hidden: frozenset[str] = frozenset(),
    autocast: str = "ops",
    missing: frozenset[str] = frozenset(),
    accelerator: str = "full",
    strict: bool = False,
) -> None:
    """Register the device with torch (once per process, as a vendor plug-in's import does)."""
    if getattr(torch, NAME, None) is not None:
        return
    acc = getattr(torch._C, "_acc", None)
    if acc is None:
        raise ImportError(
            "strictdev needs torch._C._acc (a Python device guard); "
            f"torch {torch.__version__} lacks it"
        )
    STATE.__init__(cards, missing, strict)
    torch.utils.rename_privateuse1_backend(NAME)
    torch.utils.generate_methods_for_privateuse1_backend()
    torch._register_device_module(NAME, _module(hidden))

    class Hooks(acc.PrivateUse1Hooks):
        def is_available(self) -> bool:
            return STATE.cards > 0

        def has_primary_context(self, index: int) -> bool:
            return True

        def is_built(self) -> bool:
            return True

    class Guard(acc.DeviceGuard):
        def type_(self) -> torch._C._autograd.DeviceType:
            return torch._C._autograd.DeviceType.PrivateUse1

    acc.register_python_privateuseone_hook(Hooks())
    acc.register_python_privateuseone_device_guard(Guard())
    _register_kernels(autocast)
    if "pinned" not in hidden:
        install_pinning(STATE.conduct)
    _install_accelerator(accelerator)
