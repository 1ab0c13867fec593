"""Publish a simulation to Kafka: account records, then request events paced in event time.

``speed`` is event-time seconds per wall second (0 = as fast as possible). With
``bad_every=N`` every N-th event is followed by a deliberately malformed record (cycling
through the ways producers break the contract), so the DLQ path is exercised and visible;
those records are counted separately and never carry real data.
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from kafka import KafkaProducer

from pipeline.codec import account_to_dict, request_to_dict
from pipeline.settings import Settings
from pipeline.sim.scenarios import Simulation


def malformed(i: int, doc: dict) -> bytes:
    """The i-th kind of broken record, derived from a valid event document."""
    kind = i % 4
    if kind == 0:
        return orjson.dumps(doc)[:-7] + b",,}"  # truncated / invalid JSON
    bad = dict(doc)
    if kind == 1:
        del bad["ip"]
    elif kind == 2:
        bad["ip"] = "999.12.1.300"
    else:
        bad["prompt_tokens"] = "lots"
    return orjson.dumps(bad)


@dataclass(slots=True)
class PublishStats:
    events: int = 0
    malformed: int = 0
    accounts: int = 0
    event_time: float = 0.0
    done: bool = False


def producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(
        linger_ms=20,
        batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
        acks=1,
        **settings.kafka.client_kwargs(),
    )


def publish_accounts(settings: Settings, prod: KafkaProducer, sim: Simulation) -> int:
    topic = settings.topics.name("accounts")
    accounts = sim.accounts()
    for acct in accounts:
        prod.send(topic, key=acct.account_id.encode(), value=orjson.dumps(account_to_dict(acct)))
    prod.flush()
    return len(accounts)


def publish_simulation(
    settings: Settings,
    sim: Simulation,
    speed: float = 0.0,
    bad_every: int = 0,
    stats: PublishStats | None = None,
    stop: threading.Event | None = None,
) -> PublishStats:
    """Accounts first (so enrichment has them), then events in event-time order."""
    stats = stats or PublishStats()
    stop = stop or threading.Event()
    prod = producer(settings)
    try:
        stats.accounts = publish_accounts(settings, prod, sim)
        topic = settings.topics.name("requests")
        wall0 = time.monotonic()
        for ev in sim.events():
            if stop.is_set():
                break
            if speed > 0:
                delay = wall0 + (ev.ts - sim.start) / speed - time.monotonic()
                if delay > 0.002:
                    time.sleep(delay)
            doc = request_to_dict(ev)
            key = ev.account_id.encode()
            prod.send(topic, key=key, value=orjson.dumps(doc))
            stats.events += 1
            stats.event_time = ev.ts
            if bad_every and stats.events % bad_every == 0:
                prod.send(topic, key=key, value=malformed(stats.malformed, doc))
                stats.malformed += 1
        prod.flush()
    finally:
        prod.close()
        stats.done = True
    return stats


def export_simulation(sim: Simulation, events: Path, accounts: Path | None = None) -> int:
    """Events as NDJSON (gzipped for a ``.gz`` name) and account records as JSONL: the
    files ``xwatch replay --input/--accounts`` reads. Returns the number of events."""
    opener = gzip.open if events.suffix == ".gz" else open
    n = 0
    with opener(events, "wb") as f:
        for ev in sim.events():
            f.write(orjson.dumps(request_to_dict(ev)) + b"\n")
            n += 1
    if accounts is not None:
        with open(accounts, "wb") as f:
            for acct in sim.accounts():
                f.write(orjson.dumps(account_to_dict(acct)) + b"\n")
    return n
