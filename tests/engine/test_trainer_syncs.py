"""Host syncs of a training step, counted on a real step; batches prefetched to the card."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from rcnn.data import make_data_loader
from rcnn.engine.prefetch import prefetch_to_device
from rcnn.engine.run import build_training, start_session

# Every way a tensor's value reaches the host: each waits for the card's queued work.
TO_HOST = ("tolist", "item", "__float__", "__int__", "__bool__", "cpu", "numpy")


@pytest.fixture
def host_reads(monkeypatch) -> Counter:
    """Counts tensor-to-host conversions by the file that asked for them."""
    calls: Counter = Counter()
    for name in TO_HOST:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            calls[Path(sys._getframe(1).f_code.co_filename).name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


def test_the_counter_sees_each_kind_of_host_read(host_reads):
    t = torch.tensor([1.5, 2.0])
    assert (float(t[0]), int(t[1]), bool(t[0]), t.tolist(), t[0].item()) == (
        1.5,
        2,
        True,
        [1.5, 2.0],
        1.5,
    )
    assert host_reads["test_trainer_syncs.py"] == 5


def test_a_training_step_reads_its_losses_to_the_host_once(
    tiny_set, tiny_cfg, tmp_path, host_reads, monkeypatch
):
    session = start_session(tiny_cfg(tmp_path))
    run = build_training(session, resume=False, checkpoints=False)
    syncs = []
    monkeypatch.setattr(session.adapter, "synchronize", lambda index=None: syncs.append(index))
    images, targets, _ = next(iter(run.data_loader))
    host_reads.clear()
    losses = run.trainer.step(images, targets)
    assert len(losses) == 4  # four loss terms, one read
    assert host_reads["trainer.py"] == 1
    assert syncs == []  # the trainer never synchronizes the card itself


class _Loader:
    """Three batches of (images, targets, ids); records how many were taken."""

    def __init__(self, batches):
        self.batches, self.taken = batches, 0

    def __iter__(self):
        for batch in self.batches:
            self.taken += 1
            yield batch


def test_prefetch_takes_the_next_batch_before_handing_out_the_current(tiny_set, tiny_cfg, tmp_path):
    session = start_session(tiny_cfg(tmp_path))
    batches = [b for _, b in zip(range(3), make_data_loader(session.cfg), strict=False)]
    loader = _Loader(batches)
    assert session.adapter.supports_pinned_memory() is False  # the CPU needs no copy
    taken_when_yielded = []
    for images, targets, ids in prefetch_to_device(loader, session.adapter, session.index):
        taken_when_yielded.append(loader.taken)
        assert images.tensors.device.type == "cpu" and len(targets) == len(ids) == 2
    assert taken_when_yielded == [2, 3, 3]
