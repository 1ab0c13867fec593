"""The replay benchmark (``xwatch bench replay``): replay beside its floors, in one run.

On one broker (the embedded Tansu unless ``--bootstrap`` names one), with the same events
(one per message, a heavy-tailed population, as ``bench core`` generates them):

* the floors: kafka-python consuming the topic range with the consumer settings replay
  uses, doing nothing with the records; and an orjson decode-only loop over the events;
* ``xwatch replay`` from the broker: the same range through the core (its own reader, the
  same function the command calls), with the fetch in a reader process (the default) and
  inline in the core's process;
* ``xwatch replay --input`` from a file of the same events.

Each replay starts from a fresh core with the accounts loaded, and is timed from its first
record to its last, reading included. The figures are single runs on a shared machine:
read the ratios, which compare measurements taken seconds apart on the same events.
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path

import orjson

from pipeline import replay
from pipeline.bench import machine
from pipeline.bench_live import _produce, _scoped, bootstrap_and_events
from pipeline.settings import Settings
from pipeline.topics import ensure_topics


def _raw_consume(settings: Settings, topic: str, total: int) -> float:
    """kafka-python over the whole range with replay's consumer settings: events/s."""
    consumer = replay.range_consumer(settings)
    try:
        parts = replay.topic_partitions(consumer, topic)
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        n, t = 0, time.perf_counter()
        idle = 0
        while n < total:
            got = sum(map(len, consumer.poll(timeout_ms=1000, max_records=50_000).values()))
            n += got
            idle = 0 if got else idle + 1
            if idle == 30:
                raise TimeoutError(f"kafka-python read {n} of {total} records, then nothing")
        return n / (time.perf_counter() - t)
    finally:
        consumer.close()


def _replayed(settings: Settings, batches, sim, expected: int) -> tuple[float, int]:
    """events/s and alerts of one replay of ``expected`` records, from a fresh core with
    the accounts loaded; a replay that saw any other number of records fails."""
    flow = replay.new_flow(settings, set(range(settings.topics.partitions)))
    for acct in sim.accounts():
        flow.accounts.put(acct)
    gc.collect()
    t = time.perf_counter()
    result = replay.run(settings, batches, flow, replay.Progress(None, enabled=False))
    seconds = time.perf_counter() - t
    if result.records != expected or flow.counters.processed != expected:
        raise RuntimeError(
            f"replayed {result.records} records ({flow.counters.processed} processed), "
            f"{expected} were written"
        )
    return result.records / seconds, len(result.alerts)


def bench_replay(
    settings: Settings, events: int = 500_000, accounts: int = 20_000, seed: int = 7
) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="xwatch-bench-replay-"))
    with bootstrap_and_events(settings, events, accounts, seed) as (bootstrap, evs, sim):
        s = _scoped(settings, bootstrap, "replay")
        ensure_topics(s)
        _produce(s, evs, sim)
        path = workdir / "events.jsonl"
        with open(path, "wb") as f:
            for _, raw, _ in evs:
                f.write(raw + b"\n")
        topic = s.topics.name("requests")
        raws = [raw for _, raw, _ in evs]
        t = time.perf_counter()
        for raw in raws:
            orjson.loads(raw)
        decode_eps = len(raws) / (time.perf_counter() - t)
        del raws
        raw_eps = _raw_consume(s, topic, len(evs))
        batches, _, _ = replay.topic_range(s, topic, None, None)  # a reader process
        broker_eps, broker_alerts = _replayed(s, batches, sim, len(evs))
        batches, _, _ = replay.topic_range(s, topic, None, None, reader="inline")
        inline_eps, inline_alerts = _replayed(s, batches, sim, len(evs))
        batches, _ = replay.file_records(path, s.topics.partitions)
        file_eps, file_alerts = _replayed(s, batches, sim, len(evs))
    return {
        "machine": machine(),
        "events": len(evs),
        "accounts": accounts,
        "decode_eps": round(decode_eps),
        "raw_consume_eps": round(raw_eps),
        "replay_broker_eps": round(broker_eps),
        "replay_broker_inline_eps": round(inline_eps),
        "replay_file_eps": round(file_eps),
        "alerts": {"broker": broker_alerts, "broker_inline": inline_alerts, "file": file_alerts},
        "ratios": {
            "replay_broker_vs_raw_consume": broker_eps / raw_eps,
            "replay_broker_inline_vs_raw_consume": inline_eps / raw_eps,
            "replay_file_vs_decode": file_eps / decode_eps,
        },
        "workdir": str(workdir),
    }


def print_replay(r: dict) -> None:
    print(f"machine: {r['machine']}")
    print(f"{r['events']:,} events of {r['accounts']:,} accounts, one per message")
    rows = (
        ("orjson decode only (floor)", r["decode_eps"], ""),
        ("kafka-python consume, replay's settings (floor)", r["raw_consume_eps"], ""),
        (
            "replay from the broker (reader process)",
            r["replay_broker_eps"],
            f"{r['ratios']['replay_broker_vs_raw_consume']:.2f} x kafka-python consume",
        ),
        (
            "replay from the broker (reading inline)",
            r["replay_broker_inline_eps"],
            f"{r['ratios']['replay_broker_inline_vs_raw_consume']:.2f} x kafka-python consume",
        ),
        ("replay from a file", r["replay_file_eps"], ""),
    )
    for name, eps, note in rows:
        print(f"{name:50s} {eps:>10,d} events/s  {note}")
    a = r["alerts"]
    print(f"alerts: {a['broker']} (broker), {a['broker_inline']} (inline), {a['file']} (file)")
