"""The Faust worker: a thin shell around :class:`pipeline.flow.Flow`.

Faust owns the consumer group, partition assignment and the worker lifecycle. The
``detect`` agent takes messages in batches (``stream.take_events``; at most
``kafka.take_max``, waiting at most ``kafka.take_within_ms``), hands each one's raw bytes
to the flow and sends what comes back (alerts, dead letters, and a campaign digest per
closed bucket; all rare). No per-event table writes or sends: that is what keeps the
worker near Faust's own per-message floor. A batch's events run back to back, so the
detection core finds its code and data still in the CPU's caches from the event before,
which it does not after each of Faust's per-message steps; Faust acks a batch's events
once they are processed, so revocation still finds every unit between two records.
The ``campaigns`` agent runs the campaign stage over every shard's digests; the
one-partition digests topic makes it a single stage for the whole group.

State survives restarts and rebalances as snapshots (:mod:`pipeline.state`): each unit's
every ``state.snapshot_interval_s``, one partition's at a time (the agent pauses for one
partition's state, not all of them), between two records; all at revocation and shutdown;
restored, and the group's offsets committed to exactly where each restored state ends,
before Faust seeks. After a crash, outputs already written are not sent twice.

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
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from pipeline.codec import (
    decode_digest,
    encode_alert,
    encode_dead_letter,
    encode_digest,
    encode_enriched,
)
from pipeline.detect.campaigns import CampaignStage
from pipeline.enrich.network import NetworkEnricher
from pipeline.flow import NOTHING, Flow, Output, campaign_detector
from pipeline.logs import json_handler
from pipeline.metrics import WorkerMetrics, WorkerStats
from pipeline.records import InvalidEvent, Source
from pipeline.reference import ReferenceFollower
from pipeline.settings import KafkaSettings, Settings
from pipeline.state import Checkpointer, alert_identity, unit_name

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


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with the fetch wait of ``kafka.fetch_max_wait_ms``.

    Faust hard-codes 1,500 ms. A broker may answer a fetch as soon as records are there
    (Kafka does) or hold it for the whole wait (the embedded Tansu does), and then every
    event waits for it: ``xwatch bench live`` showed an ingest lag of 1.2-1.4 s (p50) with
    Faust's wait and 0.09 s with 100 ms.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # its fetcher reads it at start
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class App(faust.App):
    """faust.App whose consumer fetches with ``fetch_max_wait_ms`` (:class:`_ConsumerThread`):
    the worker's, and the benchmark's Faust no-op floor beside it."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 1500, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms  # 1500: Faust's own
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> _Transport:
        return _Transport(self.conf.broker_consumer, self)


def create_app(
    settings: Settings, flow: Flow | None = None, partitions: int | None = None
) -> faust.App:
    """The Faust app: the ``detect`` agent (requests), the ``campaigns`` agent (digests of
    every shard; its one partition makes it a single stage for the whole group) and a task
    that follows the reference data. ``partitions``: of the requests topic (the campaign
    stage waits for all of them); default ``topics.partitions``."""
    k, t = settings.kafka, settings.topics
    if not k.bootstrap:
        raise ValueError("the worker needs a bootstrap address (--bootstrap / KAFKA_BOOTSTRAP)")
    for name, value in (("take_max", k.take_max), ("take_within_ms", k.take_within_ms)):
        if value < 1:
            raise ValueError(f"kafka.{name} must be 1 or more, not {value}")
    take_max, take_within = k.take_max, k.take_within_ms / 1000
    flow = flow or Flow(
        settings.detector,
        NetworkEnricher.from_settings(settings.network),
        keep_enriched=t.publish_enriched,
        external_campaigns=True,
    )
    n_partitions = partitions or t.partitions
    stage_box: dict[str, Any] = {}  # "stage": CampaignStage, "next_offset": int

    def new_stage() -> CampaignStage:
        return CampaignStage(campaign_detector(settings.detector), set(range(n_partitions)))

    datadir = Path(settings.data_dir).expanduser() / settings.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = App(
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
        fetch_max_wait_ms=k.fetch_max_wait_ms,
    )
    raw = {
        "value_type": bytes,
        "key_type": bytes,
        "value_serializer": "raw",
        "key_serializer": "raw",
    }
    requests_name = t.name("requests")
    digests_name = t.name("digests")
    state_name = t.name("state")
    requests_topic = app.topic(requests_name, **raw)
    digests_topic = app.topic(digests_name, partitions=1, **raw)
    alerts_topic = app.topic(t.name("alerts"), **raw)
    dlq_topic = app.topic(t.name("dlq"), **raw)
    enriched_topic = app.topic(t.name("enriched"), **raw)
    reference = ReferenceFollower(settings, flow, aiokafka_kwargs(k))
    stats = WorkerStats()
    assigned: set[int] = set()
    owned: set[str] = set()  # units (state.unit_name) this worker holds
    to_restore: set[str] = set()
    expect: dict[str, int] = {}  # unit -> the offset its first record after a restore must have
    gaps: dict[str, int] = {}  # unit -> records between its state and its first record

    async def send_state(key: bytes, value: bytes | None) -> None:
        await app.producer.send(state_name, key, value, 0, None, None)

    async def flush() -> None:
        await app.producer.flush()

    ckpt = Checkpointer(settings, send_state, flush)
    stats.checkpoint = ckpt
    due = {"detect": False, "campaigns": False}

    def shard_units() -> dict[str, tuple[int, object]]:
        return {
            unit_name("requests", p): (sh.next_offset, sh)
            for p, sh in flow.shards.items()
            if unit_name("requests", p) in owned
        }

    saved_at: dict[str, int] = {}  # unit -> the snapshot tick it was last saved at
    ticks = [0]

    def least_recent(units: dict[str, tuple[int, object]]) -> dict[str, tuple[int, object]]:
        """The one unit saved longest ago (never saved first): one partition per tick."""
        if not units:
            return {}
        name = min(units, key=lambda u: (saved_at.get(u, -1), u))
        saved_at[name] = ticks[0]
        return {name: units[name]}

    def stage_units() -> dict[str, tuple[int, object]]:
        st = stage_box.get("stage")
        unit = unit_name("digests", 0)
        return {unit: (stage_box["next_offset"], st)} if st and unit in owned else {}

    def highwater(partition: int) -> int | None:
        try:
            return app.consumer.highwater(TP(requests_name, partition))
        except Exception:  # not assigned (any more) or no fetch yet
            return None

    metrics = WorkerMetrics(flow, stats, highwater)
    sample = WorkerMetrics.SAMPLE

    async def send_alerts(alerts: list) -> None:
        for alert in alerts:
            if alert_identity(alert) in ckpt.alerts_sent:
                ckpt.already_written += 1
                continue  # written before a crash; this is the replay after the snapshot
            stats.count_alert(alert.kind, alert.severity, alert.status)
            await alerts_topic.send(
                key=(alert.account_ids[0] if alert.kind == "account" else alert.alert_id).encode(),
                value=encode_alert(alert),
            )

    def check_resume(unit: str, offset: int) -> None:
        """The first record after a restore must be the one right after the state's last."""
        want = expect.pop(unit, None)
        if want is not None and offset != want:
            gaps[unit] = offset - want
            log.error("unit %s resumed at offset %d, its state ends at %d", unit, offset, want)

    def internal_error(m: Any, exc: Exception) -> Output:
        """A defect met processing message ``m``: logged, and the record dead-lettered."""
        log.exception(
            "internal error at %s[%d]@%d",
            m.topic,
            m.partition,
            m.offset,
            extra={"topic": m.topic, "partition": m.partition, "offset": m.offset},
        )
        return flow.internal_error(m.key, m.value, Source(m.topic, m.partition, m.offset), exc)

    async def publish(out: Output, key: bytes | None) -> None:
        """What one message produced: alerts, dead letters (each once, across a restart),
        digests for the campaign stage and, when enabled, enriched records."""
        await send_alerts(out.alerts)
        for dl in out.dead_letters:
            s = dl.source
            if (s.topic, s.partition, s.offset, s.line) in ckpt.dead_sent:
                ckpt.already_written += 1
            else:
                await dlq_topic.send(key=dl.key, value=encode_dead_letter(dl))
        for d in out.digests:
            await digests_topic.send(key=str(d.partition).encode(), value=encode_digest(d))
        for rec in out.enriched:
            await enriched_topic.send(key=key, value=encode_enriched(rec))

    @app.agent(requests_topic)
    async def detect(stream: faust.StreamT) -> None:
        n = 0
        async for batch in stream.take_events(take_max, take_within):  # acked after the body
            for event in batch:
                if not reference.ready.is_set():  # a new assignment is loading its accounts
                    await reference.ready.wait()
                m = event.message
                sh = flow.shards.get(m.partition)
                if sh is not None and m.offset < sh.next_offset:
                    continue  # already in the state (Faust's seek should make this never happen)
                if expect:
                    check_resume(unit_name("requests", m.partition), m.offset)
                n += 1
                started = time.perf_counter() if n % sample == 0 else 0.0
                try:
                    out = flow.process(m.key, m.value, m.partition, m.offset, m.topic)
                except Exception as exc:  # a defect: keep the record, keep the worker alive
                    out = internal_error(m, exc)
                if started:
                    metrics.processing.observe(time.perf_counter() - started)
                if out is not NOTHING:  # most messages produce nothing (no __bool__ call)
                    await publish(out, m.key)
            if due["detect"]:
                due["detect"] = False
                await ckpt.save(least_recent(shard_units()))

    @app.agent(digests_topic)
    async def campaigns(stream: faust.StreamT) -> None:
        async for event in stream.events():
            m = event.message
            if m.offset < stage_box.get("next_offset", 0):
                continue  # already in the stage's state
            if expect:
                check_resume(unit_name("digests", 0), m.offset)
            stage = stage_box.get("stage")
            if stage is None:
                stage = stage_box["stage"] = new_stage()
            digest = decode_digest(m.value)
            if isinstance(digest, InvalidEvent):  # not from a worker of this version
                log.error("digest at offset %d refused: %s", m.offset, digest.detail)
            else:
                alerts = stage.offer(digest)
                flow.counters.alerts += len(alerts)
                await send_alerts(alerts)
            stage_box["next_offset"] = m.offset + 1
            if due["campaigns"]:
                due["campaigns"] = False
                await ckpt.save(stage_units())

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set, **_: Any) -> None:
        # Faust has drained the agents: every unit is between two records. Save them all,
        # so whichever worker takes one over continues exactly where this one stopped.
        await ckpt.save({**shard_units(), **stage_units()})

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned_tps: set, **_: Any) -> None:
        mine = {tp.partition for tp in assigned_tps if tp.topic == requests_name}
        units = {unit_name("requests", p) for p in mine}
        units |= {unit_name("digests", 0) for tp in assigned_tps if tp.topic == digests_name}
        to_restore.clear()
        to_restore.update(units - owned)  # units kept from the last assignment stay in memory
        owned.clear()
        owned.update(units)
        flow.retain_shards(mine)
        if unit_name("digests", 0) not in owned:
            stage_box.clear()
        assigned.clear()
        assigned.update(mine)
        reference.follow_partitions(mine)

    @app.on_rebalance_complete.connect
    async def resume(sender: Any, **_: Any) -> None:
        """Runs before Faust seeks to the committed offsets. Restores each newly assigned
        unit from its snapshot (from the beginning when it has none) and commits, for every
        unit held, the offset right after its state's last record: Faust's seek then lands
        exactly there, for kept units too (Faust's own commits lag the state, and after
        a rebalance it would deliver records the state already holds)."""
        new = sorted(to_restore)
        to_restore.clear()
        found = await ckpt.restore(new) if new else {}
        commits: dict[TP, int] = {}
        for unit in sorted(owned):
            logical, _, part = unit.partition(":")
            if logical == "requests":
                p = int(part)
                tp = TP(requests_name, p)
                if unit in new:
                    snap = found.get(unit)
                    if snap:
                        flow.adopt_shard(p, snap.state)
                    else:
                        flow.shards.pop(p, None)
                sh = flow.shards.get(p)
                offset = sh.next_offset if sh else 0  # no shard yet: nothing processed
            else:
                tp = TP(digests_name, 0)
                if unit in new:
                    snap = found.get(unit)
                    stage_box["stage"] = snap.state if snap else new_stage()
                    stage_box["next_offset"] = snap.next_offset if snap else 0
                offset = stage_box.get("next_offset", 0)
            if unit in new:
                how = "snapshot" if found.get(unit) else "no snapshot: from the beginning"
                log.info("unit %s resumes at offset %d (%s)", unit, offset, how)
            expect[unit] = commits[tp] = offset
        # Faust's transport-level commit of exact offsets; its seek to them follows
        if commits and not await app.consumer._commit(commits):
            log.error("could not commit the resume offsets %s", commits)

    @app.on_before_shutdown.connect
    async def on_shutdown(sender: Any, **_: Any) -> None:
        await ckpt.save({**shard_units(), **stage_units()})

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

    @app.page("/accounting")
    async def accounting(web: Any, request: Any) -> Any:
        """Per input partition held here: consumed = processed + dead-lettered, and the
        offset its state has reached; the same for the campaign stage when it is held here
        (null otherwise); snapshots saved and restored by this process."""
        parts = {
            str(p): {
                "consumed": sh.counts.consumed,
                "processed": sh.counts.processed,
                "dead_lettered": sh.counts.dead_lettered,
                "next_offset": sh.next_offset,
                "snapshot_offset": ckpt.saved_offsets.get(unit_name("requests", p)),
            }
            for p, sh in sorted(flow.shards.items())
        }
        stage_unit = unit_name("digests", 0)
        stage = (
            {
                "next_offset": stage_box.get("next_offset", 0),
                "snapshot_offset": ckpt.saved_offsets.get(stage_unit),
            }
            if stage_unit in owned
            else None
        )
        body = {
            "partitions": parts,
            "campaign_stage": stage,
            "snapshots_saved": ckpt.saved,
            "snapshots_restored": ckpt.restored,
            "snapshots_refused": ckpt.refused,
            "outputs_already_written": ckpt.already_written,
            "resume_gaps": gaps,
        }
        return web.json(body)

    @app.task
    async def follow_reference() -> None:
        await reference.run()

    @app.timer(interval=settings.state.snapshot_interval_s / max(1, n_partitions))
    async def snapshot_due() -> None:
        # a shard unit per tick, so each is saved every interval and a snapshot pauses the
        # agent for one partition's state; the campaign stage once per interval
        ticks[0] += 1
        due["detect"] = True
        if ticks[0] % max(1, n_partitions) == 0:
            due["campaigns"] = True

    @app.timer(interval=10.0)
    async def report() -> None:
        c = flow.counters
        log.info(
            "consumed=%d processed=%d dead_lettered=%d late=%d alerts=%d shards=%d snapshots=%d",
            c.consumed,
            c.processed,
            c.dead_lettered,
            c.late,
            c.alerts,
            len(flow.shards),
            ckpt.saved,
        )

    return app
