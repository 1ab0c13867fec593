"""A running worker serves Prometheus metrics that move with the traffic, and health
endpoints: alive at once, ready after partitions are assigned and reference data loaded."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from pipeline.metrics import METRICS
from pipeline.sim.publish import publish_simulation
from pipeline.sim.scenarios import Simulation
from pipeline.topics import ensure_topics
from tests.integration.helpers import running_worker, wait_for, wait_processed

pytestmark = pytest.mark.integration


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


def _scrape(base: str) -> dict[str, float]:
    status, body = _get(base + "/metrics")
    assert status == 200
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def test_metrics_move_and_readiness_follows_assignment(kafka_settings, tmp_path: Path) -> None:
    s = kafka_settings
    ensure_topics(s)
    base = f"http://127.0.0.1:{s.web_port}"
    with running_worker(s, tmp_path / "worker.log"):
        wait_for(lambda: _get(base + "/healthz")[0] == 200, timeout=60)
        ready = wait_for(lambda: _get(base + "/readyz")[0] == 200, timeout=60)
        assert ready
        body = orjson.loads(_get(base + "/readyz")[1])
        assert body["ready"] and body["partitions"] == [0, 1, 2, 3]

        sim = Simulation(seed=4, accounts=100, duration=900, rate=10.0, scenarios=())
        stats = publish_simulation(s, sim, speed=0)
        producer = KafkaProducer(**s.kafka.client_kwargs())
        producer.send(s.topics.name("requests"), key=b"bad", value=b"{not json")
        producer.flush()
        producer.close()
        wait_processed(s)
        first = _scrape(base)
        assert first["xwatch_records_consumed_total"] == stats.events + 1
        assert first["xwatch_records_processed_total"] == stats.events
        assert first["xwatch_records_dead_lettered_total{reason=invalid_json}"] == 1
        assert first["xwatch_ready"] == 1
        assert first["xwatch_reference_accounts"] == 100
        assert any(k.startswith("xwatch_consumer_lag{") for k in first)

        more = publish_simulation(
            s, Simulation(seed=5, accounts=100, duration=300, rate=10.0, scenarios=()), speed=0
        )
        wait_processed(s)
        second = _scrape(base)
        assert second["xwatch_records_consumed_total"] == stats.events + 1 + more.events

    families = {name.split("{")[0] for name in second}
    exposed = {
        f.removesuffix("_total")
        .removesuffix("_bucket")
        .removesuffix("_count")
        .removesuffix("_sum")
        .removesuffix("_created")
        for f in families
        if f.startswith("xwatch_")
    }
    assert exposed <= set(METRICS), exposed - set(METRICS)
