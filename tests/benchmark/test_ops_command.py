"""`python -m benchmark ops`: times both implementations and prints the comparison table."""

import argparse

import torch

from benchmark.commands import ops


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    ops.add_parser(parser.add_subparsers())
    return parser.parse_args(["ops", *argv])


def test_time_ms_brackets_every_call_with_synchronize():
    events = []
    median = ops.time_ms(lambda: events.append("call"), lambda: events.append("sync"), 2, 3)
    assert events.count("call") == 5
    assert events[0] == "sync" and events[-1] == "sync"
    assert all(events[i - 1] == "sync" for i, e in enumerate(events) if e == "call")
    assert 0 <= median < 100


def test_ops_prints_kernel_native_and_ratio_per_case(monkeypatch, capsys):
    small = [
        ops.Case("nms", "nms", "tiny nms", ops._nms_case(50, 0.7)),
        ops.Case("roi_pool", "roi_pool", "tiny roi_pool", _tiny_pool),
    ]
    monkeypatch.setattr(ops, "CASES", small)
    args = parse(["--device", "cpu", "--repeats", "2", "--warmup", "1"])
    assert args.func is ops.run
    assert ops.run(args) == 0
    out = capsys.readouterr().out
    assert "nms: kernel ok (preflight passed)" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("nms ", "roi_pool "))]
    assert [r[0] for r in rows] == ["nms", "roi_pool"]
    assert rows[0][-4] == "same"  # the same nms indices from kernel and native
    assert rows[1][-4] == "same"  # roi_pool takes maxima of the same values: exact
    assert ops.agreement(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5])) == "5.0e-01"
    assert ops.agreement(torch.tensor([3, 1]), torch.tensor([3])) == "differ"
    for row in rows:
        kernel_ms, native_ms, ratio = (float(v) for v in row[-3:])
        assert kernel_ms > 0 and native_ms > 0
        assert abs(ratio - native_ms / kernel_ms) < 0.05 * ratio  # printed values are rounded


def _tiny_pool(device: torch.device):
    features = torch.randn(1, 4, 20, 30).to(device)
    rois = torch.tensor([[0, 0.0, 0.0, 50.0, 40.0], [0, 10.0, 5.0, 90.0, 70.0]]).to(device)
    return lambda fn: fn(features, rois, 7, 0.25)


def test_realistic_cases_build_on_cpu():
    boxes, scores = ops._proposals(2000, seed=0)
    assert boxes.shape == (2000, 4) and scores.shape == (2000,)
    assert (boxes[:, 2:] >= boxes[:, :2]).all()
    levels = ops._fpn_level(ops._rois(2048, 4, seed=9))
    assert set(levels.tolist()) == {0, 1, 2, 3}  # the box head case spans P2-P5


def test_case_filter_times_only_the_matching_cases(monkeypatch, capsys):
    small = [
        ops.Case("nms", "nms", "tiny nms", ops._nms_case(50, 0.7)),
        ops.Case("roi_pool", "roi_pool", "tiny roi_pool", _tiny_pool),
    ]
    monkeypatch.setattr(ops, "CASES", small)
    assert ops.run(parse(["--device", "cpu", "--repeats", "1", "--case", "pool"])) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert "roi_pool" in rows and "nms" not in rows
    assert [c.label for c in ops.selected(["nms", "roi_pool"])] == ["tiny nms", "tiny roi_pool"]


def test_a_case_filter_that_matches_nothing_is_one_line(capsys):
    from benchmark.__main__ import main

    assert main(["ops", "--device", "cpu", "--case", "gemm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --case gemm matches no case; cases: nms: 2000 RPN")
    assert err.count("\n") == 1
