"""Reference data is live: a network.intel override and an account record published while
a worker runs apply to the next events within seconds, with no restart."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from pipeline.codec import encode_request, format_ts
from pipeline.records import RequestEvent
from pipeline.refdata import list_intel, load_accounts, put_intel
from pipeline.topics import ensure_topics
from tests.integration.helpers import read_all, running_worker, wait_for
from tests.unit.test_schemas import validator

pytestmark = pytest.mark.integration


SPOT_CHECKS = {  # ip -> (asn, kind), from the IP data notes
    "8.8.8.8": (15169, "hosting"),
    "52.95.110.1": (16509, "hosting"),
    "20.1.1.1": (8075, "hosting"),
    "185.220.101.1": (60729, "tor"),
    "10.1.2.3": (None, "reserved"),
    "2001:db8::1": (None, "reserved"),
}


def _event(n: int, ts: float, ip: str = "73.15.2.3") -> RequestEvent:
    return RequestEvent(
        event_id=f"live-{n}",
        ts=ts,
        account_id="acct-live",
        api_key_id="key-1",
        ip=ip,
        user_agent="curl/8.5.0",
        endpoint="/v1/chat/completions",
        model="small-2025-06",
        prompt_tokens=100,
        completion_tokens=50,
        status=200,
        latency_ms=900.0,
    )


def test_override_and_account_update_apply_without_restart(kafka_settings, tmp_path: Path):
    s = kafka_settings.with_overrides({"topics.publish_enriched": True})
    ensure_topics(s)
    producer = KafkaProducer(**s.kafka.client_kwargs())
    topic = s.topics.name("requests")
    t0 = 1_793_606_400.0
    sent = 0

    def send() -> str:
        nonlocal sent
        sent += 1
        producer.send(topic, key=b"acct-live", value=encode_request(_event(sent, t0 + sent)))
        producer.flush()
        return f"live-{sent}"

    def enriched(event_id: str) -> dict | None:
        recs = [r for r in read_all(s, "enriched") if r["event"]["event_id"] == event_id]
        return recs[0] if recs else None

    with running_worker(s, tmp_path / "worker.log"):
        send()
        first = wait_for(lambda: enriched("live-1"), 90)
        for i, ip in enumerate(SPOT_CHECKS, start=1):
            producer.send(topic, key=b"acct-live", value=encode_request(_event(-i, t0, ip)))
        producer.flush()
        for i, (ip, (asn, kind)) in enumerate(SPOT_CHECKS.items(), start=1):
            net = wait_for(lambda i=i: enriched(f"live--{i}"), 30)["network"]
            assert (net["ip"], net["asn"], net["kind"]) == (ip, asn, kind)
        validator("enriched").validate(first)
        assert first["account"] == {"status": "unknown"}
        assert first["network"]["kind"] == "residential_or_unknown"
        assert first["network"]["asn"] == 7922

        put_intel(s, {"cidr": "73.15.2.0/24", "kind": "vpn", "label": "test-vendor"})
        accounts = tmp_path / "accounts.jsonl"
        accounts.write_bytes(
            orjson.dumps(
                {
                    "account_id": "acct-live",
                    "org_id": "org-live",
                    "created_at": format_ts(t0 - 86400),
                    "tier": "enterprise",
                    "country": "US",
                    "payment_verified": True,
                }
            )
            + b"\n"
        )
        report = load_accounts(s, accounts)
        assert (report.loaded, report.problems) == (1, [])
        published = time.monotonic()

        def updated() -> dict | None:
            rec = enriched(send())
            time.sleep(0.3)
            rec = rec or enriched(f"live-{sent}")
            if rec and rec["network"]["source"] == "override" and "tier" in rec["account"]:
                return rec
            return None

        rec = wait_for(updated, timeout=30, interval=0.2)
        took = time.monotonic() - published
    producer.close()
    validator("enriched").validate(rec)
    assert (rec["network"]["kind"], rec["network"]["label"]) == ("vpn", "test-vendor")
    assert rec["account"]["tier"] == "enterprise"
    assert took < 15, f"updates took {took:.1f} s to apply"
    assert [r.cidr for r in list_intel(s)] == ["73.15.2.0/24"]
