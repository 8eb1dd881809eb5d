"""rcnn.utils.comm: bus bandwidth as nccl-tests computes it; a lost peer named by rank and node."""

from __future__ import annotations

import pytest

from rcnn.utils import comm


def test_bus_bandwidth_is_nccl_tests_formula() -> None:
    # 1 GB in 0.5 s: algbw 2 GB/s; all-reduce on 8 ranks moves 2(n-1)/n of it per rank
    assert comm.bus_bandwidth("all_reduce", 10**9, 8, 0.5) == pytest.approx((2.0, 3.5))
    assert comm.bus_bandwidth("all_gather", 10**9, 8, 0.5) == pytest.approx((2.0, 1.75))
    assert comm.bus_bandwidth("all_reduce", 10**9, 2, 1.0) == pytest.approx((1.0, 1.0))


TWO_NODES = [
    {"rank": 0, "node": 0, "hostname": "a"},
    {"rank": 1, "node": 0, "hostname": "a"},
    {"rank": 2, "node": 1, "hostname": "b"},
]
GLOO = "[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [10.0.0.2]:1"


def test_lost_peer_names_the_other_nodes_ranks(monkeypatch) -> None:
    monkeypatch.setattr(comm, "_PEERS", TWO_NODES)
    err = RuntimeError(f"some context\n{GLOO}\nmore")
    assert comm.lost_peer(err) == f"rank 2 on b (node 1) was lost: {GLOO}"
    assert comm.lost_peer(RuntimeError("CUDA error: out of memory")) is None  # its own failure


def test_lost_peer_on_one_node_names_every_other_rank(monkeypatch) -> None:
    one_node = [{"rank": r, "node": 0, "hostname": "a"} for r in range(3)]
    monkeypatch.setattr(comm, "_PEERS", one_node)
    expected = "rank 1 on a (node 0), rank 2 on a (node 0) one of them was lost: broken pipe"
    assert comm.lost_peer(RuntimeError("Broken pipe")) == expected.replace("broken", "Broken")


def test_a_single_process_has_no_peer_to_lose(monkeypatch) -> None:
    monkeypatch.setattr(comm, "_PEERS", [])
    assert comm.lost_peer(RuntimeError(GLOO)) is None
    assert [p["rank"] for p in comm.peers()] == [0]
