"""``xwatch bench replay`` at a toy size on the real broker: it reads back every record it
wrote, and the broker and file replays of the same events agree."""

from __future__ import annotations

import pytest

from pipeline.bench_replay import bench_replay

pytestmark = pytest.mark.integration


def test_bench_replay_runs_on_the_broker(kafka_settings) -> None:
    r = bench_replay(kafka_settings, events=3_000, accounts=300)
    assert r["events"] == 3_000
    assert r["raw_consume_eps"] > 0 and r["replay_broker_eps"] > 0 and r["replay_file_eps"] > 0
    assert r["alerts"]["broker"] == r["alerts"]["broker_inline"] == r["alerts"]["file"]
    assert r["replay_broker_inline_eps"] > 0
