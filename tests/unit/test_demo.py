"""The demo's reading of a worker's progress (pipeline/demo.py)."""

from __future__ import annotations

import orjson

from pipeline.codec import format_ts
from pipeline.demo import WorkerProgress
from pipeline.enrich.network import NetworkEnricher
from pipeline.flow import Flow
from pipeline.metrics import WorkerMetrics, WorkerStats, samples
from pipeline.records import Source
from pipeline.settings import Settings


def test_the_demo_reads_a_workers_progress_from_what_its_metrics_serve(
    network: NetworkEnricher,
) -> None:
    """The demo drains by comparing what it sent and received with these three counters,
    parsed from the text a worker's /metrics really serves (labels summed)."""
    flow = Flow(Settings.load(environ={}).detector, network, partitions={0, 1})
    raws = [
        orjson.dumps(
            {
                "event_id": f"e{i}",
                "ts": format_ts(1_795_000_000 + i),
                "account_id": "a1",
                "api_key_id": "k1",
                "ip": "198.51.100.7",
                "user_agent": "cli/1",
                "endpoint": "/v1/chat",
                "model": "m1",
                "prompt_tokens": 10,
                "completion_tokens": 20,
                "status": 200,
                "latency_ms": 50,
                "gateway_region": "eu-west-1",
            }
        )
        for i in range(5)
    ]
    raws += [b"{not json", b"[]"]
    for i, raw in enumerate(raws):
        flow.process_message(b"a1", raw, Source("api.requests", i % 2, i))
    stats = WorkerStats()
    for kind in ("account", "account", "campaign"):
        stats.count_alert(kind, "high", "open")
    text = WorkerMetrics(flow, stats, lambda partition: None).render().decode()
    assert WorkerProgress.of(samples(text)) == WorkerProgress(consumed=7, dead_lettered=2, alerts=3)
