"""The spine on the real broker: an outside producer writes contract events and broken
records to api.requests; an outside consumer reads alerts and dead letters."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from pipeline.cli import main
from pipeline.codec import encode_alert, encode_request
from pipeline.flow import Flow, partition_for
from pipeline.records import Source
from pipeline.sim.publish import publish_simulation
from pipeline.sim.scenarios import Simulation
from pipeline.topics import ensure_topics
from tests.conftest import SCHEMAS
from tests.integration.helpers import read_all, running_worker, wait_for, wait_processed
from tests.unit.test_schemas import validator

pytestmark = pytest.mark.integration

INVALID = sorted((SCHEMAS / "examples" / "invalid").glob("*.json"))


SIM = {"seed": 7, "accounts": 300, "duration": 2400, "rate": 15.0, "scenarios": ("burst",)}


def offline_alerts(settings, sim: Simulation, network) -> list:
    """The same events through the offline core, partitioned as the producer did."""
    n = settings.topics.partitions
    flow = Flow(settings.detector, network, partitions=set(range(n)))
    for acct in sim.accounts():
        flow.accounts.put(acct)
    offsets = dict.fromkeys(range(n), 0)
    alerts = []
    for ev in sim.events():
        key = ev.account_id.encode()
        p = partition_for(key, n)
        alerts += flow.process_message(key, encode_request(ev), Source("t", p, offsets[p])).alerts
        offsets[p] += 1
    return sorted(alerts, key=lambda a: (a.emitted_at, a.alert_id, a.status))


def test_campaign_alerted_and_bad_records_dead_lettered(
    kafka_settings, tmp_path: Path, network
) -> None:
    s = kafka_settings
    ensure_topics(s)
    sim = Simulation(**SIM)
    (label,) = sim.labels()
    with running_worker(s, tmp_path / "worker.log"):
        stats = publish_simulation(s, sim, speed=0, bad_every=4000)
        producer = KafkaProducer(**s.kafka.client_kwargs())
        for i, path in enumerate(INVALID):
            producer.send(
                s.topics.name("requests"), key=f"bad-{i}".encode(), value=path.read_bytes()
            )
        producer.flush()
        producer.close()

        alerts = wait_for(
            lambda: [a for a in read_all(s, "alerts") if label["account_id"] in a["account_ids"]],
            timeout=120,
        )
        wait_processed(s)
        all_alerts = read_all(s, "alerts")
        dead = read_all(s, "dlq")

    assert alerts[0]["status"] == "open"
    assert alerts[0]["kind"] == "account"
    for alert in all_alerts:
        validator("alert").validate(alert)
        assert alert["account_ids"] == [label["account_id"]], "benign account alerted"

    # the live worker and the offline core give the same alerts, byte for byte
    offline = offline_alerts(s, Simulation(**SIM), network)
    assert [orjson.loads(encode_alert(a)) for a in offline] == sorted(
        all_alerts, key=lambda a: (a["emitted_at"], a["alert_id"], a["status"])
    )

    # replaying the topic gives the live alerts again, and the same file twice
    outputs = []
    for n in (1, 2):
        out = tmp_path / f"replay-{n}.jsonl"
        assert main(["replay", "--output", str(out), "--quiet", *_cli_settings(s)]) == 0
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    replayed = [orjson.loads(line) for line in outputs[0].splitlines()]
    assert sorted(replayed, key=lambda a: (a["emitted_at"], a["alert_id"], a["status"])) == sorted(
        all_alerts, key=lambda a: (a["emitted_at"], a["alert_id"], a["status"])
    )

    expected = {p.name.split(".")[0] for p in INVALID}
    assert len(dead) == stats.malformed + len(INVALID)
    for record in dead:
        validator("dead-letter").validate(record)
        assert record["source"]["topic"] == s.topics.name("requests")
        assert record["detail"]
    seen_keys = {orjson.loads(b'"' + r["key_b64"].encode() + b'"') for r in dead if r["key_b64"]}
    assert seen_keys
    assert expected <= {r["reason"] for r in dead}


def _cli_settings(s) -> list[str]:
    """The test's settings as ``--set`` arguments of the CLI."""
    return [
        "--bootstrap",
        s.kafka.bootstrap,
        "--set",
        f"topics.prefix={s.topics.prefix}",
        "--set",
        f"topics.partitions={s.topics.partitions}",
    ]


def test_clean_run_raises_no_alert(kafka_settings, tmp_path: Path) -> None:
    s = kafka_settings
    ensure_topics(s)
    sim = Simulation(seed=5, accounts=300, duration=1800, rate=15.0, scenarios=())
    with running_worker(s, tmp_path / "worker.log"):
        stats = publish_simulation(s, sim, speed=0)
        wait_processed(s)
        assert read_all(s, "alerts") == []
        assert read_all(s, "dlq") == []
    assert stats.events > 20_000
