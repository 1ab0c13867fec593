"""Faults on the real broker: a worker killed with SIGKILL mid-stream, and workers joining
and leaving the group under load. Each ends with nothing lost (every record processed or
dead-lettered, once) and exactly the alerts of one uninterrupted run, read as an outside
consumer reads them."""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from pipeline.broker import free_port
from pipeline.codec import encode_alert, request_to_dict
from pipeline.demo import start_worker, stop_process
from pipeline.sim.publish import (
    PublishStats,
    malformed,
    producer,
    publish_accounts,
    publish_simulation,
)
from pipeline.sim.scenarios import Simulation
from pipeline.topics import ensure_topics
from tests.integration.helpers import read_all, wait_for, wait_processed
from tests.integration.test_worker import offline_alerts

pytestmark = pytest.mark.integration

SIM = {"seed": 7, "accounts": 300, "duration": 2400, "rate": 15.0, "scenarios": ("burst", "hydra")}
BAD_EVERY = 2000


def _settings(kafka_settings):
    return kafka_settings.with_overrides({"state.snapshot_interval_s": "1"})


def _accounting(settings) -> dict:
    url = f"http://127.0.0.1:{settings.web_port}/accounting"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return orjson.loads(resp.read())
    except OSError:
        return {}


def _consumed(settings) -> int:
    parts = _accounting(settings).get("partitions", {})
    return sum(p["consumed"] for p in parts.values())


def _since_snapshot(settings) -> int:
    """Records the worker has consumed since its last snapshot (0 until every shard and the
    campaign stage have one: the stage is saved on its first digest after each interval)."""
    acc = _accounting(settings)
    parts = acc.get("partitions", {}).values()
    stage = acc.get("campaign_stage") or {}
    if not parts or any(p["snapshot_offset"] is None for p in parts):
        return 0
    if stage.get("snapshot_offset") is None:
        return 0
    return sum(p["next_offset"] - p["snapshot_offset"] for p in parts)


def _key(a: dict) -> tuple:
    return (a["emitted_at"], a["alert_id"], a["status"])


def _check_outputs(s, network, stats: PublishStats, final: dict) -> None:
    """Alerts equal the uninterrupted run's, nothing duplicated; every record accounted."""
    alerts = read_all(s, "alerts")
    expected = [
        orjson.loads(encode_alert(a)) for a in offline_alerts(s, Simulation(**SIM), network)
    ]
    assert {a["kind"] for a in expected} == {"account", "campaign"}
    dupes = [k for k, n in collections.Counter(map(_key, alerts)).items() if n > 1]
    assert not dupes, f"alerts written twice: {dupes[:5]}"
    if sorted(alerts, key=_key) != sorted(expected, key=_key):
        import json

        Path("/tmp/actual.json").write_text(json.dumps(sorted(alerts, key=_key), indent=0))
        Path("/tmp/expected.json").write_text(json.dumps(sorted(expected, key=_key), indent=0))
    assert sorted(alerts, key=_key) == sorted(expected, key=_key)

    dead = read_all(s, "dlq")
    sources = [(d["source"]["partition"], d["source"]["offset"]) for d in dead]
    assert len(sources) == len(set(sources)) == stats.malformed > 0

    assert final["resume_gaps"] == {}
    parts = final["partitions"]
    assert len(parts) == s.topics.partitions
    total = stats.events + stats.malformed
    assert sum(p["consumed"] for p in parts.values()) == total
    for p in parts.values():
        assert p["consumed"] == p["processed"] + p["dead_lettered"]
    assert sum(p["dead_lettered"] for p in parts.values()) == stats.malformed
    assert sum(p["processed"] for p in parts.values()) == stats.events


def _records(sim: Simulation) -> tuple[list[tuple[bytes, bytes]], PublishStats]:
    """The simulation as (key, value) records, a malformed one after every BAD_EVERY-th."""
    out, stats = [], PublishStats()
    for ev in sim.events():
        doc = request_to_dict(ev)
        key = ev.account_id.encode()
        out.append((key, orjson.dumps(doc)))
        stats.events += 1
        if stats.events % BAD_EVERY == 0:
            out.append((key, malformed(stats.malformed, doc)))
            stats.malformed += 1
    return out, stats


def _publish(s, records: list[tuple[bytes, bytes]]) -> None:
    prod = producer(s)
    for key, value in records:
        prod.send(s.topics.name("requests"), key=key, value=value)
    prod.flush()
    prod.close()


def test_sigkill_mid_stream_then_restart(kafka_settings, tmp_path: Path, network) -> None:
    """The first worker gets 30k records (alerts have begun), then the rest; it is killed
    once it is 3k records past its latest snapshot, so the second worker must process
    again records whose alerts and dead letters were already written."""
    s = kafka_settings.with_overrides({"state.snapshot_interval_s": "4"})
    ensure_topics(s)
    sim = Simulation(**SIM)
    records, stats = _records(sim)
    total = len(records)
    head = 30_000
    prod = producer(s)
    publish_accounts(s, prod, sim)
    prod.close()
    first = start_worker(s, tmp_path / "worker-1.log")
    try:
        _publish(s, records[:head])
        wait_for(lambda: _consumed(s) == head, timeout=120, interval=0.2)
        assert read_all(s, "alerts"), "alerts should have begun before the kill"
        _publish(s, records[head:])
        wait_for(lambda: _since_snapshot(s) >= 3_000, timeout=120, interval=0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        stop_process(first)
    second = start_worker(s, tmp_path / "worker-2.log")
    try:
        wait_processed(s)
        final = wait_for(lambda: (a := _accounting(s)) and _consumed(s) == total and a, timeout=60)
        assert final["snapshots_restored"] == s.topics.partitions + 1  # shards + campaign stage
        assert final["outputs_already_written"] > 0, "nothing was processed twice: no test"
        _check_outputs(s, network, stats, final)
        assert second.poll() is None, (tmp_path / "worker-2.log").read_text()[-3000:]
    finally:
        stop_process(second)


def test_one_two_one_workers_under_load(kafka_settings, tmp_path: Path, network) -> None:
    s = _settings(kafka_settings)
    s2 = s.with_overrides({"web_port": str(free_port())})
    ensure_topics(s)
    stats = PublishStats()
    # event time runs at 80x: the 40 simulated minutes take ~30 s of wall time, enough for
    # a worker to join and another to leave while records still arrive
    publisher = threading.Thread(
        target=publish_simulation,
        args=(s, Simulation(**SIM)),
        kwargs={"speed": 80.0, "bad_every": BAD_EVERY, "stats": stats},
    )
    first = start_worker(s, tmp_path / "worker-1.log")
    second = None
    try:
        wait_for(lambda: _accounting(s).get("partitions") is not None, timeout=60)
        publisher.start()
        wait_for(lambda: stats.events > 5000, timeout=60, interval=0.1)
        second = start_worker(s2, tmp_path / "worker-2.log")  # 1 -> 2
        wait_for(lambda: len(_accounting(s2).get("partitions", {})) > 0, timeout=60)
        both = len(_accounting(s).get("partitions", {})) + len(_accounting(s2)["partitions"])
        assert both == s.topics.partitions, "two workers should split the partitions"
        assert not stats.done, "the rebalance should happen under load"
        time.sleep(2)
        stop_process(first)  # 2 -> 1: a graceful leave, under load
        assert not stats.done, "the second rebalance should happen under load"
        publisher.join(120)
        wait_processed(s2)
        total = stats.events + stats.malformed
        final = wait_for(
            lambda: (a := _accounting(s2)) and _consumed(s2) == total and a, timeout=60
        )
        _check_outputs(s2, network, stats, final)
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)
