"""Read ``alerts`` (or the DLQ) as an outside subscriber does: a plain KafkaConsumer."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from pipeline.settings import Settings

log = logging.getLogger("xwatch.subscribe")


def consumer_for(settings: Settings, topics: list[str], from_beginning: bool) -> KafkaConsumer:
    """A group-less consumer assigned to every partition of ``topics``.

    Alert topics are quiet, so the fetch wait is short: a subscriber sees an alert within
    ~0.1 s of its write, not after kafka-python's default half second.
    """
    consumer = KafkaConsumer(
        enable_auto_commit=False, fetch_max_wait_ms=100, **settings.kafka.client_kwargs()
    )
    parts = [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    if not parts:
        consumer.close()
        raise SystemExit(f"no such topic(s): {', '.join(topics)} (run `xwatch topics create`)")
    consumer.assign(parts)
    if from_beginning:
        consumer.seek_to_beginning(*parts)
    else:
        consumer.seek_to_end(*parts)
    return consumer


def end_offsets(consumer: KafkaConsumer, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The partitions' end offsets, as a reader that must not stop early needs them.

    Kafka's answer (ListOffsets, latest), corrected for brokers that report the last
    record batch's *base* offset + 1 instead of its last offset + 1: the local Tansu broker
    does, whenever the last batch holds several records, so a reader stopping at that
    offset loses the rest of the batch. The batch holding ``end - 1`` is fetched (whole:
    fetches return whole batches) and the end moved past its last record. On a correct
    broker this costs one small fetch per partition and changes nothing (or takes in
    records written meanwhile). Reassigns ``consumer``: assign and seek after calling.
    """
    ends = dict(consumer.end_offsets(parts))
    probe = [tp for tp in parts if ends[tp] > 0]
    if not probe:
        return ends
    consumer.assign(probe)
    for tp in probe:
        consumer.seek(tp, ends[tp] - 1)
    pending = set(probe)
    deadline = time.monotonic() + 10.0
    while pending and time.monotonic() < deadline:
        for tp, msgs in consumer.poll(timeout_ms=200, max_records=1_000_000).items():
            if tp in pending and msgs:
                ends[tp] = max(ends[tp], msgs[-1].offset + 1)
                pending.discard(tp)
                consumer.pause(tp)
    consumer.assign([])
    return ends


def read_to_end(settings: Settings, topic: str) -> Iterator[ConsumerRecord]:
    """Every record on ``topic`` from the beginning up to the end offsets seen at the start."""
    return read_range(settings, [topic], missing_ok=False)


def read_range(
    settings: Settings, topics: list[str], since_ms: int | None = None, missing_ok: bool = True
) -> Iterator[ConsumerRecord]:
    """Every record of ``topics`` written since ``since_ms`` (Kafka timestamps; None: from
    the beginning) up to the end offsets seen at the start. Missing topics: nothing, or
    SystemExit naming them when not ``missing_ok``."""
    consumer = KafkaConsumer(enable_auto_commit=False, **settings.kafka.client_kwargs())
    try:
        parts = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not parts:
            if missing_ok:
                return
            raise SystemExit(f"no such topic: {', '.join(topics)} (run `xwatch topics create`)")
        ends = end_offsets(consumer, parts)
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        if since_ms is not None:
            try:
                found = consumer.offsets_for_times(dict.fromkeys(parts, max(0, since_ms)))
            except KafkaError as exc:  # a broker without timestamp lookups: read it all
                log.warning("offsets_for_times failed (%s); reading %s whole", exc, topics)
            else:
                for tp in parts:
                    at = found.get(tp)
                    consumer.seek(tp, at.offset if at is not None else ends[tp])
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for msgs in consumer.poll(timeout_ms=500).values():
                yield from msgs
    finally:
        consumer.close()


def records(consumer: KafkaConsumer, timeout_ms: int = 500) -> Iterator[tuple[str, dict]]:
    """(topic, decoded JSON) for each record that arrives within one poll."""
    for tp, msgs in consumer.poll(timeout_ms=timeout_ms).items():
        for msg in msgs:
            try:
                yield tp.topic, orjson.loads(msg.value)
            except orjson.JSONDecodeError:
                yield tp.topic, {"undecodable": msg.value[:200].decode("utf-8", "replace")}


def format_alert(doc: dict) -> str:
    """One line a person reads: status, severity, account(s), score, top reason."""
    reasons = doc.get("reasons") or []
    top = reasons[0] if reasons else None
    why = f"{top['feature']}={top['observed']:.4g} (baseline {top['baseline']:.4g})" if top else "-"
    accounts = ",".join(doc.get("account_ids", []))
    return (
        f"{doc.get('emitted_at', '?')}  {doc.get('status', '?'):8s} {doc.get('severity', '?'):8s} "
        f"{accounts}  score={doc.get('score', 0):.2f}  {why}  [{doc.get('alert_id', '?')}]"
    )
