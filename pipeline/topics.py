"""Topic creation through kafka-python's admin client. Idempotent."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from pipeline.settings import Settings

COMPACT = {"cleanup.policy": "compact"}


@dataclass(frozen=True, slots=True)
class TopicSpec:
    logical: str
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the system uses. ``api.requests`` and ``accounts`` are co-partitioned."""
    t = settings.topics
    n = t.partitions
    return [
        TopicSpec("requests", t.name("requests"), n, {}),
        TopicSpec("accounts", t.name("accounts"), n, COMPACT),
        TopicSpec("intel", t.name("intel"), 1, COMPACT),
        TopicSpec("alerts", t.name("alerts"), n, {}),
        TopicSpec("dlq", t.name("dlq"), n, {}),
        TopicSpec("state", t.name("state"), 1, COMPACT),
        TopicSpec("digests", t.name("digests"), 1, {}),
        *([TopicSpec("enriched", t.name("enriched"), n, {})] if t.publish_enriched else []),
    ]


def ensure_topics(settings: Settings, replication: int = 1) -> dict[str, str]:
    """Create missing topics; report ``created`` or ``exists (N partitions)`` per topic."""
    admin = KafkaAdminClient(**settings.kafka.client_kwargs())
    try:
        existing = set(admin.list_topics())
        report: dict[str, str] = {}
        new = []
        for spec in topic_specs(settings):
            if spec.name in existing:
                report[spec.name] = "exists"
            else:
                new.append(
                    NewTopic(spec.name, spec.partitions, replication, topic_configs=spec.config)
                )
                report[spec.name] = "created"
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # raced another creator: fine
                admin.create_topics(new)
        return report
    finally:
        admin.close()


def partition_counts(settings: Settings) -> dict[str, int]:
    """logical name -> partitions of each existing topic the worker needs; raises
    SystemExit naming the missing ones (the worker never creates topics itself)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(**settings.kafka.client_kwargs())
    try:
        counts: dict[str, int] = {}
        missing = []
        for spec in topic_specs(settings):
            parts = consumer.partitions_for_topic(spec.name)
            if parts:
                counts[spec.logical] = len(parts)
            elif spec.logical != "enriched":
                missing.append(spec.name)
        if missing:
            raise SystemExit(f"missing topic(s): {', '.join(missing)} (run `xwatch topics create`)")
        return counts
    finally:
        consumer.close()
