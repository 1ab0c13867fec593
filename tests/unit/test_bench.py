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
