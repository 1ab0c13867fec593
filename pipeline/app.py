"""The Faust worker: a thin shell around :class:`pipeline.flow.Flow`.

Faust owns the consumer group, partition assignment and the worker lifecycle. The agent
does three things per message: hand the raw bytes to the flow, and send what comes back
(alerts, dead letters; rare). No per-event table writes or sends: that is what keeps the
worker near Faust's own per-message floor.

Reference data (``accounts``, ``network.intel``, both compacted) is kept current by
:class:`pipeline.reference.ReferenceFollower`, outside the group; the agent waits for it
only while a newly assigned partition's accounts load.
"""

from __future__ import annotations

import logging
import ssl
import time
from pathlib import Path
from typing import Any

import faust
from faust.types import TP

from pipeline.codec import encode_alert, encode_dead_letter, encode_enriched
from pipeline.enrich.network import NetworkEnricher
from pipeline.flow import Flow
from pipeline.logs import json_handler
from pipeline.metrics import WorkerMetrics, WorkerStats
from pipeline.records import Source
from pipeline.reference import ReferenceFollower
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
    """kafka-python's keyword arguments, but TLS as an ``ssl_context`` (aiokafka's form)."""
    kw = k.client_kwargs()
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname"):
        kw.pop(name, None)
    ctx = _ssl_context(k)
    if ctx is not None:
        kw["ssl_context"] = ctx
    return kw


def create_app(settings: Settings, flow: Flow | None = None) -> faust.App:
    """The Faust app with one agent (requests) and one task (reference data)."""
    k, t = settings.kafka, settings.topics
    if not k.bootstrap:
        raise ValueError("the worker needs a bootstrap address (--bootstrap / KAFKA_BOOTSTRAP)")
    flow = flow or Flow(
        settings.detector,
        NetworkEnricher.from_settings(settings.network),
        keep_enriched=t.publish_enriched,
    )
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
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_host=settings.web_bind,
        autodiscover=False,
        datadir=str(datadir),
        loghandlers=[json_handler()] if settings.log_format == "json" else [],
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
    enriched_topic = app.topic(t.name("enriched"), **raw)
    reference = ReferenceFollower(settings, flow, aiokafka_kwargs(k))
    stats = WorkerStats()
    assigned: set[int] = set()
    requests_name = t.name("requests")

    def highwater(partition: int) -> int | None:
        try:
            return app.consumer.highwater(TP(requests_name, partition))
        except Exception:  # not assigned (any more) or no fetch yet
            return None

    metrics = WorkerMetrics(flow, stats, highwater)
    sample = WorkerMetrics.SAMPLE

    @app.agent(requests_topic)
    async def detect(stream: faust.StreamT) -> None:
        n = 0
        async for event in stream.events():
            if not reference.ready.is_set():  # a new assignment is loading its accounts
                await reference.ready.wait()
            m = event.message
            source = Source(m.topic, m.partition, m.offset)
            n += 1
            started = time.perf_counter() if n % sample == 0 else 0.0
            try:
                out = flow.process_message(m.key, m.value, source)
            except Exception as exc:  # a defect: keep the record, keep the worker alive
                log.exception(
                    "internal error at %s[%d]@%d",
                    m.topic,
                    m.partition,
                    m.offset,
                    extra={"topic": m.topic, "partition": m.partition, "offset": m.offset},
                )
                out = flow.internal_error(m.key, m.value, source, exc)
            if started:
                metrics.processing.observe(time.perf_counter() - started)
            stats.last_offset[m.partition] = m.offset
            if out:
                for alert in out.alerts:
                    stats.count_alert(alert.kind, alert.severity, alert.status)
                    await alerts_topic.send(
                        key=(
                            alert.account_ids[0] if alert.kind == "account" else alert.alert_id
                        ).encode(),
                        value=encode_alert(alert),
                    )
                for dl in out.dead_letters:
                    await dlq_topic.send(key=dl.key, value=encode_dead_letter(dl))
                for rec in out.enriched:
                    await enriched_topic.send(key=m.key, value=encode_enriched(rec))

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, tps: set, **_: Any) -> None:
        mine = {tp.partition for tp in tps if tp.topic == requests_name}
        flow.retain_shards(mine)
        assigned.clear()
        assigned.update(mine)
        reference.follow_partitions(mine)

    def is_ready() -> bool:
        stats.ready = bool(assigned) and reference.ready.is_set()
        return stats.ready

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        is_ready()
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        body = {
            "ready": is_ready(),
            "partitions": sorted(assigned),
            "reference_loaded": reference.ready.is_set(),
        }
        return web.json(body, status=200 if body["ready"] else 503)

    @app.task
    async def follow_reference() -> None:
        await reference.run()

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
