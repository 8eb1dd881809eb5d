"""The strict device's conduct counters, its strict card check and its gap switches."""

import pytest
from strict import run_python

pytestmark = pytest.mark.strictdev


def test_counters_count_host_reads_copies_syncs_and_cards():
    out = run_python(
        """
        strict, seen = torch.strict, {}
        torch.ones(2, device="strict:1")
        strict.reset_counters()
        seen["reset"] = strict.counters()
        x = torch.ones(4).to("strict")  # pageable, blocking
        torch.ones(4).pin_memory().to("strict", non_blocking=True)
        torch.ones(4).to("strict", non_blocking=True)  # non-blocking but pageable
        seen["pinned"] = torch.ones(1).pin_memory().is_pinned()
        x.sum().item()
        x.tolist()
        x.cpu()
        torch.empty(4).copy_(x)
        x[0] > 0 and None
        strict.synchronize()
        torch.accelerator.synchronize()
        seen["after"] = strict.counters()
        torch.ones(1, device="strict:1")
        seen["cards"] = strict.counters()["cards_touched"]
        print(json.dumps(seen))
        """
    )
    zero = {"synchronize": 0, "d2h": 0, "h2d": 0, "h2d_pinned": 0, "h2d_non_blocking": 0}
    zero.update(sync_ops=0, sync_ops_by_name={})
    assert out["reset"] == {**zero, "cards_touched": []}
    assert out["pinned"] is True
    assert out["after"] == {
        "synchronize": 2,
        "d2h": 5,  # item, tolist, cpu, copy_ to the host, a comparison read as a bool
        "h2d": 3,
        "h2d_pinned": 1,
        "h2d_non_blocking": 2,
        "sync_ops": 0,
        "sync_ops_by_name": {},
        "cards_touched": [0],
    }
    assert out["cards"] == [0, 1]


def test_ops_that_block_the_host_are_counted_by_name():
    """What a card runs only once its queue drains: an output sized by the data, or a value
    for the host; their data-independent twins are not counted."""
    out = run_python(
        """
        x = torch.arange(6.0, device="strict")
        mask, reps = x > 2, torch.tensor([1, 2, 3], device="strict")
        torch.strict.reset_counters()
        x[mask], mask.nonzero(), torch.where(mask), x.masked_select(mask)
        torch.unique(x), torch.unique(x[None], dim=0), torch.unique_consecutive(x)
        torch.bincount(reps, minlength=3), torch.equal(x, x)
        torch.repeat_interleave(reps), x[:3].repeat_interleave(reps)
        y = x.clone()
        y[mask] = x[:3]  # a tensor of values: index_put with a nonzero inside
        blocking = torch.strict.counters()
        torch.strict.reset_counters()
        y[mask] = 0.0  # masked_fill: no size to learn
        x[1:], x[torch.tensor([0, 2], device="strict")], x.sum(), mask.any()
        x[:3].repeat_interleave(reps, output_size=6)
        print(json.dumps({"blocking": blocking, "free": torch.strict.counters()}))
        """
    )
    assert out["blocking"]["sync_ops_by_name"] == {
        "aten::_unique2": 1,
        "aten::bincount": 1,
        "aten::equal": 1,
        "aten::index": 1,
        "aten::index_put_": 1,
        "aten::masked_select": 1,
        "aten::nonzero": 2,
        "aten::repeat_interleave": 2,
        "aten::unique_consecutive": 1,
        "aten::unique_dim": 1,
    }
    assert out["blocking"]["sync_ops"] == 12 and out["blocking"]["d2h"] == 0
    assert out["free"]["sync_ops"] == 0 and out["free"]["sync_ops_by_name"] == {}


def test_strict_mode_lets_rank_r_touch_only_card_r_and_the_parent_none(tmp_path):
    violations = tmp_path / "violations.txt"
    out = run_python(
        """
        import os
        seen = {}

        def touch(card):
            try:
                torch.ones(1, device=f"strict:{card}")
                return "ok"
            except RuntimeError as err:
                return str(err)

        seen["parent"] = touch(0)
        os.environ["LOCAL_RANK"] = "1"
        seen["own"], seen["other"] = touch(1), touch(0)
        try:
            torch.strict.set_device(0)
        except RuntimeError as err:
            seen["set_device"] = str(err)
        seen["cards"] = torch.strict.counters()["cards_touched"]
        print(json.dumps(seen))
        """,
        strict="1",
        violations=str(violations),
    )
    assert "launcher's parent" in out["parent"] and "strict:0" in out["parent"]
    assert len(violations.read_text().splitlines()) == 3  # parent, other card, set_device
    assert out["own"] == "ok"
    assert "local rank 1" in out["other"] and "only strict:1" in out["other"]
    assert "local rank 1" in out["set_device"]
    assert out["cards"] == [1]


def test_gap_switches_take_away_what_a_thin_plugin_lacks():
    out = run_python(
        """
        seen = {"module": sorted(n for n in ("synchronize", "get_amp_supported_dtype",
                 "manual_seed_all", "max_memory_allocated") if hasattr(torch.strict, n))}
        torch.accelerator.synchronize()
        seen["accelerator_syncs"] = torch.strict.counters()["synchronize"]
        big = torch.empty(256, device="strict")
        seen["accelerator_peak"] = torch.accelerator.max_memory_allocated()
        try:
            torch.autocast("strict", enabled=False)
        except AssertionError as err:
            seen["autocast"] = str(err)
        x = torch.rand(5, device="strict")
        for name, op in [("sort", lambda: torch.sort(x)),
                         ("conv", lambda: torch.nn.functional.conv2d(
                             x.reshape(1, 1, 1, 5), torch.ones(1, 1, 1, 1, device="strict")))]:
            try:
                op()
            except NotImplementedError as err:
                seen[name] = str(err)
        seen["pin"] = type(torch.empty(1)).__name__
        try:
            torch.empty(1).pin_memory()
        except Exception as err:
            seen["pin"] = type(err).__name__
        print(json.dumps(seen))
        """,
        hide="synchronize,amp,seed,memory,pinned",
        missing="sort,convolution",
    )
    assert out["module"] == []
    assert out["accelerator_syncs"] == 1  # torch.accelerator still synchronizes the card
    assert out["accelerator_peak"] == 1024
    assert "get_amp_supported_dtype" in out["autocast"]
    assert out["sort"].startswith("Could not run 'aten::sort")
    assert out["sort"].count("\n") > 3  # torch's many-line dump, as a real plug-in gives
    assert out["conv"].startswith("Could not run 'aten::convolution")
    assert out["pin"] == "NotImplementedError"


def test_accelerator_off_leaves_torch_accelerator_to_torch():
    out = run_python(
        """
        try:
            torch.accelerator.synchronize()
            seen = "synchronized"
        except RuntimeError as err:
            seen = type(err).__name__
        print(json.dumps([seen, torch.strict.counters()["synchronize"]]))
        """,
        accelerator="off",
    )
    assert out == ["RuntimeError", 0]
