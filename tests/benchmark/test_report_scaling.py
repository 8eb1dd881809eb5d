"""The report's scaling table (efficiency over cards and nodes, the interconnect, the 70% flag)
and a multi-node run's records joined by run id. Fixture records: synthetic values, not
measurements."""

from __future__ import annotations

from benchmark.record import new_record
from benchmark.report import frame, join_runs, scaling_table


def rec(cards: int, nodes: int, img_s: float, busbw: float | None = None, **fields) -> dict:
    link = busbw and {
        "backend": "nccl",
        "bytes": 25 * 2**20,
        "busbw_gb_s": busbw,
        "latency_us": 9.0,
    }
    return new_record(
        mode="train",
        model="m",
        device_type="cuda",
        device_name="card",
        cards=cards,
        nodes=nodes,
        precision="fp32",
        batch_per_card=2,
        throughput_img_s=img_s,
        interconnect=link,
        **fields,
    )


def test_scaling_rows_carry_efficiency_busbw_and_the_flag() -> None:
    records = [rec(1, 1, 10.0), rec(8, 1, 76.0, 180.0), rec(16, 2, 96.0, 3.2)]
    table = scaling_table(frame(records))
    rows = {(r["cards"], r["nodes"]): r for r in table.to_dict("records")}
    assert sorted(rows) == [(8, 1), (16, 2)]
    eight, sixteen = rows[(8, 1)], rows[(16, 2)]
    assert (eight["efficiency"], eight["busbw GB/s"], eight["flag"]) == ("95.0%", "180", "")
    assert (sixteen["efficiency"], sixteen["backend"]) == ("60.0%", "nccl")
    assert sixteen["flag"] == "below 70% at busbw 3.2 GB/s"


def test_no_multi_card_records_no_table() -> None:
    assert scaling_table(frame([rec(1, 1, 10.0)])).empty


def test_a_runs_records_join_by_run_id() -> None:
    head = rec(2, 2, 5.0, status="failed", error="RankLost: rank 1 on b (node 1) was lost: x")
    head.update(node_rank=0, run_id="r")
    other = new_record(
        run_id="r",
        mode="train",
        model="m",
        device_type="cuda",
        cards=2,
        precision="fp32",
        node_rank=1,
        status="failed",
        error="RankLost: rank 1 on b was killed by SIGKILL",
    )
    alone = rec(1, 1, 3.0)
    joined = join_runs([other, alone, head])
    assert [r["run_id"] for r in joined] == ["r", alone["run_id"]]
    assert joined[0]["error"] == head["error"]  # node 0's record is the run's
    assert joined[0]["node_errors"] == ["node 1: RankLost: rank 1 on b was killed by SIGKILL"]
    assert "node_errors" not in joined[1]
