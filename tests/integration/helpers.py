"""Helpers for integration tests: a worker subprocess and outside-consumer reads."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from pipeline.demo import start_worker, stop_process
from pipeline.settings import Settings
from pipeline.subscribe import end_offsets, read_to_end


@contextlib.contextmanager
def running_worker(settings: Settings, log_path: Path) -> Iterator[None]:
    proc = start_worker(settings, log_path)
    try:
        yield
        assert proc.poll() is None, f"worker died:\n{log_path.read_text()[-3000:]}"
    finally:
        stop_process(proc)


def read_all(settings: Settings, logical: str) -> list[dict]:
    """Everything on a topic right now, read by a plain group-less KafkaConsumer."""
    return [orjson.loads(m.value) for m in read_to_end(settings, settings.topics.name(logical))]


def wait_processed(settings: Settings, timeout: float = 120.0) -> None:
    """Wait until the worker group has committed the end offset of every input partition,
    then of the campaign digests those produced (the campaign stage comes last)."""
    consumer = KafkaConsumer(**settings.kafka.client_kwargs())
    admin = KafkaAdminClient(**settings.kafka.client_kwargs())
    try:
        deadline = time.monotonic() + timeout
        for logical in ("requests", "digests"):
            topic = settings.topics.name(logical)
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
            ends = end_offsets(consumer, parts)
            while True:
                committed = admin.list_group_offsets(settings.app_id).get(settings.app_id, {})
                if all(
                    ends[tp] == 0 or (tp in committed and committed[tp].offset >= ends[tp])
                    for tp in parts
                ):
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"{logical} not processed in {timeout} s: {committed}")
                time.sleep(0.5)
    finally:
        consumer.close()
        admin.close()


def wait_for(predicate, timeout: float, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
