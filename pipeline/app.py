"""The Faust worker: a thin shell around :class:`pipeline.flow.Flow`.

Faust owns the consumer group, partition assignment and the worker lifecycle. The agent
does three things per message: hand the raw bytes to the flow, and send what comes back
(alerts, dead letters; rare). No per-event table writes or sends: that is what keeps the
worker near Faust's own per-message floor.

Reference data (``accounts``, ``network.intel``, both compacted) is read from the
beginning of every partition by a plain aiokafka consumer outside the group, so every
worker holds the full picture after a restart or rebalance; request processing starts
only once that reader has caught up with the end offsets it saw at start, and later
updates apply within a poll interval.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Any

import faust
import orjson

from pipeline.codec import (
    account_from_dict,
    encode_alert,
    encode_dead_letter,
    intel_from_dict,
)
from pipeline.enrich.network import NetworkEnricher
from pipeline.flow import Flow
from pipeline.records import Account, InvalidEvent, Source
from pipeline.settings import KafkaSettings, Settings

log = logging.getLogger("xwatch.worker")


def _ssl_context(k: KafkaSettings) -> ssl.SSLContext | None:
    if k.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    ctx = ssl.create_default_context(cafile=k.ssl_cafile)
    if k.ssl_certfile:
        ctx.load_cert_chain(k.ssl_certfile, k.ssl_keyfile)
    return ctx


def faust_credentials(k: KafkaSettings) -> Any:
    """Faust credentials object for the configured security protocol (None = plaintext)."""
    ctx = _ssl_context(k)
    if k.sasl_mechanism:
        return faust.SASLCredentials(
            username=k.sasl_username,
            password=k.sasl_password,
            mechanism=k.sasl_mechanism,
            ssl_context=ctx,
        )
    return faust.SSLCredentials(ctx) if ctx is not None else None


def aiokafka_kwargs(k: KafkaSettings) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "bootstrap_servers": k.bootstrap,
        "security_protocol": k.security_protocol,
    }
    if k.sasl_mechanism:
        kw.update(
            sasl_mechanism=k.sasl_mechanism,
            sasl_plain_username=k.sasl_username,
            sasl_plain_password=k.sasl_password,
        )
    ctx = _ssl_context(k)
    if ctx is not None:
        kw["ssl_context"] = ctx
    return kw


def apply_reference(
    flow: Flow, topic: str, accounts_topic: str, key: bytes | None, value: bytes | None
) -> str | None:
    """Apply one ``accounts`` or ``network.intel`` record to the flow; returns a problem or None.

    A null value deletes (compaction tombstone); the key names what is deleted.
    """
    if value is None:
        if key is None:
            return "tombstone without a key"
        if topic == accounts_topic:
            flow.accounts.delete(key.decode("utf-8", "replace"))
        else:
            flow.network.overrides.delete(key.decode("utf-8", "replace"))
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return f"invalid JSON: {exc}"
    rec = account_from_dict(doc) if topic == accounts_topic else intel_from_dict(doc)
    if isinstance(rec, InvalidEvent):
        return f"{rec.reason}: {rec.detail}"
    if isinstance(rec, Account):
        flow.accounts.put(rec)
    else:
        flow.network.overrides.put(rec)
    return None


def create_app(settings: Settings, flow: Flow | None = None) -> faust.App:
    """The Faust app with one agent (requests) and one task (reference data)."""
    k, t = settings.kafka, settings.topics
    if not k.bootstrap:
        raise ValueError("the worker needs a bootstrap address (--bootstrap / KAFKA_BOOTSTRAP)")
    flow = flow or Flow(settings.detector, NetworkEnricher(cache_size=settings.network.cache_size))
    datadir = Path(settings.data_dir).expanduser() / settings.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{b}" for b in k.bootstrap.split(",")],
        broker_credentials=faust_credentials(k),
        broker_session_timeout=k.session_timeout_s,
        broker_heartbeat_interval=min(3.0, k.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        producer_linger_ms=5,
        topic_partitions=t.partitions,
        topic_allow_declare=False,
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        autodiscover=False,
        datadir=str(datadir),
    )
    raw = {
        "value_type": bytes,
        "key_type": bytes,
        "value_serializer": "raw",
        "key_serializer": "raw",
    }
    requests_topic = app.topic(t.name("requests"), **raw)
    alerts_topic = app.topic(t.name("alerts"), **raw)
    dlq_topic = app.topic(t.name("dlq"), **raw)
    reference_ready = asyncio.Event()
    app.flow = flow  # for tests and introspection

    @app.agent(requests_topic)
    async def detect(stream: faust.StreamT) -> None:
        await reference_ready.wait()
        async for event in stream.events():
            m = event.message
            out = flow.process_message(m.key, m.value, Source(m.topic, m.partition, m.offset))
            if out:
                for alert in out.alerts:
                    await alerts_topic.send(
                        key=alert.account_ids[0].encode(), value=encode_alert(alert)
                    )
                for dl in out.dead_letters:
                    await dlq_topic.send(key=dl.key, value=encode_dead_letter(dl))

    @app.task
    async def follow_reference() -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(enable_auto_commit=False, **aiokafka_kwargs(k))
        await consumer.start()
        try:
            names = (t.name("accounts"), t.name("intel"))
            parts = [
                TopicPartition(name, p)
                for name in names
                for p in sorted(
                    consumer.partitions_for_topic(name) or await _partitions(consumer, name)
                )
            ]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            pending = {tp for tp, end in ends.items() if end > 0}
            if not pending:
                reference_ready.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                for tp, msgs in batches.items():
                    for msg in msgs:
                        problem = apply_reference(flow, tp.topic, names[0], msg.key, msg.value)
                        if problem:
                            log.warning(
                                "skipped %s[%d]@%d: %s", tp.topic, tp.partition, msg.offset, problem
                            )
                if pending:
                    for tp in list(pending):
                        if await consumer.position(tp) >= ends[tp]:
                            pending.discard(tp)
                    if not pending:
                        log.info(
                            "reference data loaded: %d accounts, %d overrides",
                            len(flow.accounts),
                            len(flow.network.overrides),
                        )
                        reference_ready.set()
        finally:
            await consumer.stop()

    @app.timer(interval=10.0)
    async def report() -> None:
        c = flow.counters
        log.info(
            "consumed=%d processed=%d dead_lettered=%d late=%d alerts=%d shards=%d",
            c.consumed,
            c.processed,
            c.dead_lettered,
            c.late,
            c.alerts,
            len(flow.shards),
        )

    return app


async def _partitions(consumer: Any, topic: str) -> set[int]:
    for _ in range(50):
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return parts
        await asyncio.sleep(0.2)
    raise RuntimeError(f"topic {topic!r} does not exist: run `xwatch topics create` first")
