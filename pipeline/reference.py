"""Reference data for a running worker: ``accounts`` and ``network.intel`` -> the flow.

A plain aiokafka consumer outside the consumer group (so reading reference data never
moves the group's offsets):

* ``network.intel`` (every partition) is read from the beginning once and followed;
* ``accounts`` partitions follow the worker's assignment of ``api.requests`` (the topics
  are co-partitioned): a newly assigned partition is read from the beginning, a revoked
  one is dropped from memory.

``ready`` is cleared while newly assigned partitions load, and set once every partition
has reached the end offset captured when it was added, so requests are enriched with the
account state as of the moment they are processed. Later updates apply within one poll
(0.5 s). A record that breaks its contract is skipped with a warning naming its topic,
partition and offset.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from pipeline.codec import account_from_dict, intel_from_dict
from pipeline.flow import Flow
from pipeline.records import InvalidEvent
from pipeline.settings import Settings
from pipeline.subscribe import end_offsets

log = logging.getLogger("xwatch.reference")


def apply_account(flow: Flow, partition: int, key: bytes | None, value: bytes | None) -> str | None:
    """Apply one ``accounts`` record; returns a problem, or None. A null value deletes."""
    if value is None:
        if key is None:
            return "tombstone without a key"
        flow.accounts.delete(key.decode("utf-8", "replace"), partition)
        return None
    rec = _decode(value, account_from_dict)
    if isinstance(rec, str):
        return rec
    flow.accounts.put(rec, partition)
    return None


def apply_intel(flow: Flow, key: bytes | None, value: bytes | None) -> str | None:
    """Apply one ``network.intel`` record; returns a problem, or None. A null value deletes."""
    if value is None:
        if key is None:
            return "tombstone without a key"
        try:
            flow.network.overrides.delete(key.decode("utf-8", "replace"))
        except ValueError:
            return f"tombstone key is not a CIDR: {key[:60]!r}"
        return None
    rec = _decode(value, intel_from_dict)
    if isinstance(rec, str):
        return rec
    flow.network.overrides.put(rec)
    return None


def _decode(value: bytes, parse: Any) -> Any:
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return f"invalid_json: {exc}"
    rec = parse(doc)
    if isinstance(rec, InvalidEvent):
        return f"{rec.reason}: {rec.detail}"
    return rec


class ReferenceFollower:
    """Follows the reference topics for one worker (see the module docstring)."""

    def __init__(self, settings: Settings, flow: Flow, consumer_kwargs: dict[str, Any]) -> None:
        self.flow = flow
        self.settings = settings
        self.accounts_topic = settings.topics.name("accounts")
        self.intel_topic = settings.topics.name("intel")
        self.consumer_kwargs = consumer_kwargs
        self.ready = asyncio.Event()
        self._wanted: set[int] = set()
        self._changed = asyncio.Event()

    def follow_partitions(self, partitions: set[int]) -> None:
        """The worker's ``api.requests`` assignment changed: follow these account partitions."""
        if partitions != self._wanted:
            self._wanted = set(partitions)
            self.ready.clear()
            self._changed.set()

    async def _end_offsets(self, parts: list) -> dict:
        """End offsets that are safe to wait for (pipeline.subscribe.end_offsets), read by a
        short-lived kafka-python consumer in an executor."""
        from kafka import KafkaConsumer
        from kafka import TopicPartition as KTP

        def probe() -> dict:
            consumer = KafkaConsumer(
                enable_auto_commit=False, **self.settings.kafka.client_kwargs()
            )
            try:
                ends = end_offsets(consumer, [KTP(tp.topic, tp.partition) for tp in parts])
            finally:
                consumer.close()
            return {tp: ends[KTP(tp.topic, tp.partition)] for tp in parts}

        return await asyncio.get_running_loop().run_in_executor(None, probe)

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(enable_auto_commit=False, **self.consumer_kwargs)
        await consumer.start()
        try:
            intel = [
                TopicPartition(self.intel_topic, p)
                for p in await _partitions(consumer, self.intel_topic)
            ]
            await _partitions(consumer, self.accounts_topic)
            current: set[int] = set()
            pending: dict[Any, int] = {}
            consumer.assign(intel)
            await consumer.seek_to_beginning(*intel)
            pending.update(await self._end_offsets(intel))
            while True:
                if self._changed.is_set():
                    self._changed.clear()
                    wanted = set(self._wanted)
                    for p in current - wanted:
                        dropped = self.flow.accounts.drop_partition(p)
                        log.info("dropped %d accounts of revoked partition %d", dropped, p)
                    added = [
                        TopicPartition(self.accounts_topic, p) for p in sorted(wanted - current)
                    ]
                    consumer.assign(
                        intel + [TopicPartition(self.accounts_topic, p) for p in sorted(wanted)]
                    )
                    if added:
                        await consumer.seek_to_beginning(*added)
                        pending.update(await self._end_offsets(added))
                    current = wanted
                batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for tp, msgs in batches.items():
                    for msg in msgs:
                        if tp.topic == self.accounts_topic:
                            problem = apply_account(self.flow, tp.partition, msg.key, msg.value)
                        else:
                            problem = apply_intel(self.flow, msg.key, msg.value)
                        if problem:
                            where = {
                                "topic": tp.topic,
                                "partition": tp.partition,
                                "offset": msg.offset,
                            }
                            log.warning(
                                "skipped %s[%d]@%d: %s",
                                tp.topic,
                                tp.partition,
                                msg.offset,
                                problem,
                                extra=where,
                            )
                for tp in [
                    tp
                    for tp in pending
                    if tp.topic != self.accounts_topic or tp.partition in current
                ]:
                    if await consumer.position(tp) >= pending[tp]:
                        del pending[tp]
                for tp in [
                    tp
                    for tp in pending
                    if tp.topic == self.accounts_topic and tp.partition not in current
                ]:
                    del pending[tp]
                if not pending and not self.ready.is_set() and not self._changed.is_set():
                    log.info(
                        "reference data ready: %d accounts (partitions %s), %d network overrides",
                        len(self.flow.accounts),
                        sorted(current),
                        len(self.flow.network.overrides),
                    )
                    self.ready.set()
        finally:
            await consumer.stop()


async def _partitions(consumer: Any, topic: str) -> list[int]:
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        await consumer.topics()  # refreshes cluster metadata
        await asyncio.sleep(0.2)
    raise RuntimeError(f"topic {topic!r} does not exist: run `xwatch topics create` first")
