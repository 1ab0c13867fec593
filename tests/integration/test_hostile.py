"""Hostile input through a running worker: every record is accounted for (processed or
dead-lettered with a reason) and the worker stays alive."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from pipeline.codec import format_ts
from pipeline.topics import ensure_topics
from tests.integration.helpers import read_all, running_worker, wait_processed
from tests.integration.test_metrics import _get, _scrape

pytestmark = pytest.mark.integration
T0 = 1_793_606_400.0


def _valid(rng: random.Random, n: int, account: str | None = None) -> dict:
    return {
        "event_id": f"fuzz-{n}",
        "ts": format_ts(T0 + n * 0.05),
        "account_id": account or f"acct-{rng.randint(0, 50)}",
        "api_key_id": "k1",
        "ip": rng.choice(["73.15.2.3", "52.95.110.7", "2601:1c0::5"]),
        "user_agent": "fuzz",
        "endpoint": "/v1/chat/completions",
        "model": "m",
        "prompt_tokens": rng.randint(0, 5000),
        "completion_tokens": rng.randint(0, 5000),
        "status": 200,
        "latency_ms": 12.5,
    }


def hostile_records(seed: int, n: int) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value): mostly broken records, some valid, some packed."""
    rng = random.Random(seed)
    out: list[tuple[bytes | None, bytes | None]] = []
    for i in range(n):
        doc = _valid(rng, i)
        kind = rng.randrange(14)
        key = doc["account_id"].encode()
        if kind == 0:
            value = orjson.dumps(doc)[: rng.randint(1, 60)]  # truncated JSON
        elif kind == 1:
            value = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 80)))  # noise
        elif kind == 2:
            doc[rng.choice(list(doc))] = rng.choice([None, [], {}, True, "x", -1, 1.5])
            value = orjson.dumps(doc)
        elif kind == 3:
            del doc[rng.choice(list(doc))]
            value = orjson.dumps(doc)
        elif kind == 4:
            value = orjson.dumps(doc).replace(
                b'"prompt_tokens":', b'"prompt_tokens":1' + b"9" * 40 + b',"x":'
            )
        elif kind == 5:
            doc["user_agent"] = "A" * 70_000  # too large
            value = orjson.dumps(doc)
        elif kind == 6:
            doc["ip"] = rng.choice(["999.1.1.1", "::%0", "1.2.3", "", "localhost", "fe80::1%eth0"])
            value = orjson.dumps(doc)
        elif kind == 7:
            doc["ts"] = rng.choice(
                [
                    "1970-01-01T00:00:00Z",
                    "9999-12-31T23:59:59Z",
                    "2026-02-30T00:00:00Z",
                    "yesterday",
                    "2026-11-02 08:00",
                ]
            )
            value = orjson.dumps(doc)
        elif kind == 8:
            value = None  # a tombstone on the request topic
        elif kind == 9:
            value = orjson.dumps(doc).replace(b"fuzz", "\udcff".encode("utf-8", "surrogatepass"))
        elif kind == 10:  # a packed message with one bad line among good ones
            lines = [orjson.dumps(_valid(rng, i * 10 + j)) for j in range(4)]
            lines.insert(2, b"{broken")
            out.append((key, b"\n".join(lines)))
            continue
        elif kind == 11:  # flood from one account (valid)
            value = orjson.dumps(_valid(rng, i, account="acct-flood"))
            key = b"acct-flood"
        elif kind == 12:  # a repeated event id: a duplicate while among the account's recent
            doc["event_id"] = "fuzz-duplicate"
            value = orjson.dumps(doc)
        else:
            value = orjson.dumps(doc)
        out.append((key, value))
    return out


def test_ten_thousand_hostile_records_all_accounted_for(kafka_settings, tmp_path: Path) -> None:
    s = kafka_settings
    ensure_topics(s)
    records = hostile_records(seed=11, n=10_000)
    # the documented rule: a value with an inner newline is a packed message, one record per
    # non-blank line (random noise can contain newlines too); anything else is one record
    expected = sum(
        sum(1 for line in v.split(b"\n") if line.strip()) if v and b"\n" in v.strip() else 1
        for _, v in records
    )
    base = f"http://127.0.0.1:{s.web_port}"
    producer = KafkaProducer(
        linger_ms=20, max_request_size=4 * 1024 * 1024, **s.kafka.client_kwargs()
    )
    with running_worker(s, tmp_path / "worker.log"):
        for key, value in records:
            producer.send(s.topics.name("requests"), key=key, value=value)
        producer.flush()
        producer.close()
        wait_processed(s, timeout=180)
        m = _scrape(base)
        assert _get(base + "/healthz")[0] == 200
    consumed = m["xwatch_records_consumed_total"]
    processed = m["xwatch_records_processed_total"]
    dead = sum(v for k, v in m.items() if k.startswith("xwatch_records_dead_lettered_total{"))
    assert consumed == expected
    assert consumed == processed + dead
    assert processed > 1_000 and dead > 5_000
    dlq = read_all(s, "dlq")
    assert len(dlq) == dead
    assert all(r["reason"] and r["detail"] for r in dlq)
    reasons = {r["reason"] for r in dlq}
    assert "internal_error" not in reasons
    assert {"duplicate_event", "invalid_json", "too_large", "invalid_ip"} <= reasons
