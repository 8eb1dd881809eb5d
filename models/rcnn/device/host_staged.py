"""Collectives for a plug-in device that brings none: gloo on host copies of the card's tensors.

gloo only takes CPU (and CUDA) tensors, so a plug-in card's tensors are copied to the host, reduced
there and copied back. `collective_for(device)` picks the device's own collective backend when a
registered one lists the device (hccl for npu, ...), else registers this one for the host and the
device and returns `cpu:host_staged,<device>:host_staged` (gloo with the card's tensors refuses
them; gloo beside this one for the host left gather without a backend). DDP, all_reduce and
(all_)gather_object then work unchanged.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist

from rcnn import compat

NAME = "host_staged"
_NOT_COLLECTIVES = {NAME, "fake", "threaded"}  # test doubles, not a device's own collective


def _done(result: object) -> dist.Work:
    from torch._C._distributed_c10d import _create_work_from_future

    future: torch.futures.Future = torch.futures.Future()
    future.set_result(result)
    return _create_work_from_future(future)


class HostStagedGroup(dist.ProcessGroup):
    """A process group whose collectives run gloo on host copies; results land on the card."""

    def __init__(self, store: dist.Store, rank: int, size: int, timeout: datetime.timedelta):
        super().__init__(rank, size)
        from torch._C._distributed_c10d import PrefixStore, ProcessGroupGloo

        self._gloo = ProcessGroupGloo(PrefixStore(f"{NAME}/", store), rank, size, timeout)

    def getBackendName(self) -> str:  # noqa: N802 (c10d's name)
        return NAME

    def _staged(
        self, tensors: Sequence[torch.Tensor], call: Callable[[list], dist.Work]
    ) -> dist.Work:
        host = [t.cpu() for t in tensors]
        call(host).wait()
        for tensor, copy in zip(tensors, host, strict=True):
            tensor.copy_(copy)
        return _done(list(tensors))

    def allreduce(self, tensors: list[torch.Tensor], opts: object = None) -> dist.Work:
        return self._staged(tensors, lambda host: self._gloo.allreduce(host, opts))

    def broadcast(self, tensors: list[torch.Tensor], opts: object = None) -> dist.Work:
        return self._staged(tensors, lambda host: self._gloo.broadcast(host, opts))

    def _staged_lists(
        self,
        outputs: list[list[torch.Tensor]],
        inputs: list[torch.Tensor],
        call: Callable[[list, list], dist.Work],
    ) -> dist.Work:
        host_out = [[t.cpu() for t in per_input] for per_input in outputs]
        call(host_out, [t.cpu() for t in inputs]).wait()
        for per_input, copies in zip(outputs, host_out, strict=True):
            for tensor, copy in zip(per_input, copies, strict=True):
                tensor.copy_(copy)
        return _done(outputs)

    def allgather(
        self, outputs: list[list[torch.Tensor]], inputs: list[torch.Tensor], opts: object = None
    ) -> dist.Work:
        return self._staged_lists(outputs, inputs, lambda o, i: self._gloo.allgather(o, i, opts))

    def gather(
        self, outputs: list[list[torch.Tensor]], inputs: list[torch.Tensor], opts: object = None
    ) -> dist.Work:
        return self._staged_lists(outputs, inputs, lambda o, i: self._gloo.gather(o, i, opts))

    def barrier(self, opts: object = None) -> dist.Work:
        return self._gloo.barrier(opts)


def _own_collective(device_type: str) -> str | None:
    for backend, devices in compat.backends_by_device().items():
        if device_type in devices and backend not in _NOT_COLLECTIVES:
            return backend
    return None


def collective_for(device_type: str) -> str:
    """The init_process_group backend for a plug-in device (see the module docstring)."""
    own = _own_collective(device_type)
    if own is not None:
        return own
    if not dist.is_available():
        return "gloo"
    if NAME not in compat.backends_by_device():
        if not compat.backend_registration_takes_devices():
            return "gloo"  # torch without per-device backends: gloo, which refuses card tensors
        # a process has one PrivateUse1 device, so one registration serves it
        dist.Backend.register_backend(NAME, HostStagedGroup, devices=["cpu", device_type])
    return f"cpu:{NAME},{device_type}:{NAME}"
