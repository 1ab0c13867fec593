"""The benchmarks still run end to end at a toy size (their figures are never asserted:
timing belongs to ``xwatch bench`` runs on an idle machine, not to tests)."""

from __future__ import annotations

from pipeline import bench


def test_bench_core_times_both_paths_at_a_toy_size() -> None:
    r = bench.bench_core(accounts=200, minutes=2, warm_minutes=1, python_path=True)
    names = [f["name"] for f in r["figures"]]
    assert names[0] == "orjson decode only (floor)"
    assert names[1].startswith("offline core, 200 accounts")
    assert names[2].startswith("offline core, Python path only")
    assert all(f["events"] > 100 and f["eps"] > 0 for f in r["figures"])
    assert r["snapshot"]["accounts"] > 0
    assert set(r["bytes_per_account"]) == {"20", "200"}


def test_bench_live_prints_every_round_against_both_floors(capsys) -> None:
    """The one-event row is the median round's ratio to the Faust no-op, shown beside the
    median ratio to the no-op in the worker's batches, with every round's figures."""
    from pipeline.bench_live import median_round, print_live

    rounds = [(7498, 7609, 6972), (7267, 7000, 6123), (6855, 7200, 6127)]
    (noop, take, worker), vs_take = median_round(rounds)
    r = {
        "machine": "test",
        "events": 100,
        "accounts": 10,
        "pack": 100,
        "raw_consume_eps": 176683,
        "faust_noop_eps": noop,
        "faust_noop_take_eps": take,
        "live_single_eps": worker,
        "live_packed_eps": 46451,
        "offline_eps": 53719,
        "latency_p50_s": 0.658,
        "latency_p99_s": 0.921,
        "latency_alerts": 8,
        "latency_other_alerts": 39,
        "latency_rate_eps": 3064,
        "ingest_lag_p50_s": None,
        "single_pairs": [
            {"faust_noop_eps": a, "faust_noop_take_eps": b, "live_single_eps": c}
            for a, b, c in rounds
        ],
        "memory": {},
        "ratios": {
            "live_single_vs_faust_noop": worker / noop,
            "live_single_vs_faust_noop_take": vs_take,
            "live_packed_vs_raw_consume": 46451 / 176683,
            "faust_noop_take_vs_faust_noop": take / noop,
        },
    }
    print_live(r)
    out = capsys.readouterr().out
    # the third round's 0.89 is the median against the no-op; against the batched no-op
    # the median is the second round's 0.87
    assert "0.89 x Faust no-op (0.87 x in batches, the median)" in out
    assert "6,123/7,267 = 0.84, /7,000 = 0.87" in out
    assert "1.05 x Faust no-op" in out  # the batched no-op against the plain one
