"""Reading a topic "to its end" on the real broker: every reader stops at end offsets, so
they must be right even where the broker's are not (the local Tansu reports the last
record batch's base offset + 1, which would lose the rest of that batch)."""

from __future__ import annotations

import pytest
from kafka import KafkaProducer

from pipeline.replay import topic_range
from pipeline.subscribe import read_to_end
from pipeline.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_readers_get_every_record_of_a_final_multi_record_batch(kafka_settings) -> None:
    s = kafka_settings
    ensure_topics(s)
    topic = s.topics.name("requests")
    producer = KafkaProducer(linger_ms=200, batch_size=1 << 20, **s.kafka.client_kwargs())
    for i in range(2_000):  # one batch per partition
        producer.send(topic, key=f"acct-{i % 37}".encode(), value=b'{"n": %d}' % i)
    producer.flush()
    producer.close()

    assert sum(1 for _ in read_to_end(s, topic)) == 2_000
    batches, total, _ = topic_range(s, topic, None, None)
    assert total == 2_000
    assert sum(len(b) for b in batches) == 2_000


def test_the_reader_process_reads_what_an_inline_reader_reads(kafka_settings) -> None:
    """Replay's default reader fetches in a child process; each partition's records must
    come in the same order, with the same content, as when fetched in this process (the
    interleaving of partitions may differ: no partition's state depends on it)."""
    s = kafka_settings
    ensure_topics(s)
    topic = s.topics.name("requests")
    producer = KafkaProducer(linger_ms=5, **s.kafka.client_kwargs())
    for i in range(3_000):
        producer.send(topic, key=f"acct-{i % 53}".encode(), value=b'{"n": %d}' % i)
    producer.flush()
    producer.close()

    def per_partition(reader: str) -> dict[int, list]:
        batches, total, _ = topic_range(s, topic, None, None, reader=reader)
        assert total == 3_000
        out: dict[int, list] = {}
        for batch in batches:
            for p, offset, key, value, ts in batch:
                out.setdefault(p, []).append((offset, key, value, ts))
        return out

    child, inline = per_partition("process"), per_partition("inline")
    assert sum(map(len, child.values())) == 3_000
    assert child == inline
