"""The benchmarks still run end to end at a toy size (their figures are never asserted:
timing belongs to ``xwatch bench`` runs on an idle machine, not to tests)."""

from __future__ import annotations

import pytest

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
    median ratio to the no-op in the worker's batches, with every round's figures; and
    the same comparison by CPU per message."""
    from pipeline.bench_live import Timed, cpu_medians, median_round, print_live

    cpus = [(136.8, 134.5, 161.1), (136.1, 134.1, 155.4), (145.6, 134.5, 146.4)]
    rounds = [(7498, 7609, 6972), (7267, 7000, 6123), (6855, 7200, 6127)]
    (noop, take, worker), vs_take = median_round(rounds)
    timed = [
        tuple(Timed(e, c) for e, c in zip(r, cr, strict=True))
        for r, cr in zip(rounds, cpus, strict=True)
    ]
    by_cpu = cpu_medians(timed)
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
        "faust_noop_cpu_us": by_cpu["faust_noop_cpu_us"],
        "faust_noop_take_cpu_us": by_cpu["faust_noop_take_cpu_us"],
        "live_single_cpu_us": by_cpu["live_single_cpu_us"],
        "live_packed_cpu_us": 20.0,
        "single_pairs": [
            {
                "faust_noop_eps": a.eps,
                "faust_noop_take_eps": b.eps,
                "live_single_eps": c.eps,
                "faust_noop_cpu_us": a.cpu_us,
                "faust_noop_take_cpu_us": b.cpu_us,
                "live_single_cpu_us": c.cpu_us,
            }
            for a, b, c in timed
        ],
        "memory": {},
        "ratios": {
            "live_single_vs_faust_noop": worker / noop,
            "live_single_vs_faust_noop_take": vs_take,
            "live_packed_vs_raw_consume": 46451 / 176683,
            "faust_noop_take_vs_faust_noop": take / noop,
            "live_single_vs_faust_noop_cpu": by_cpu["vs_noop"],
            "live_single_vs_faust_noop_take_cpu": by_cpu["vs_take"],
        },
    }
    print_live(r)
    out = capsys.readouterr().out
    # the third round's 0.89 is the median against the no-op; against the batched no-op
    # the median is the second round's 0.87
    assert "0.89 x Faust no-op (0.87 x in batches, the median)" in out
    assert "6,123/7,267 = 0.84, /7,000 = 0.87" in out
    assert "1.05 x Faust no-op" in out  # the batched no-op against the plain one
    # by CPU: 136.1/155.4 = 0.876 is the median of 0.849, 0.876 and 0.995; against the
    # batched no-op, the median of 0.835, 0.863 and 0.919
    assert "runs 0.88 x the Faust no-op's messages per CPU-second (0.86 x in batches)" in out
    assert "(CPU us 155.4 against 136.1 and 134.1)" in out
    assert "packed, per CPU-second of the worker: 50,000 events" in out
    assert "155.4" in out.split("live worker, one event per message")[1].splitlines()[0]


def test_cpu_of_a_process_is_read_from_proc() -> None:
    """The timed processes' CPU comes from /proc; a process that is gone has none."""
    import os
    import subprocess
    import sys

    from pipeline.bench_live import _cpu_seconds

    if not os.path.exists(f"/proc/{os.getpid()}/stat"):
        pytest.skip("no /proc: the benchmark prints no CPU figures here")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    # a reaped child is gone; our own CPU grows with our own work
    assert _cpu_seconds(gone.pid) is None
    before = _cpu_seconds(os.getpid())
    sum(range(20_000_000))
    assert _cpu_seconds(os.getpid()) > before
