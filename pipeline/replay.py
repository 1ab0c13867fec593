"""Replay: run the live worker's core over a historical range, offline, deterministically.

Sources:

* a topic range on a broker (kafka-python): per-partition start offsets from
  ``offsets_for_times(from)``, end offsets from ``offsets_for_times(to)`` (or the end
  offsets captured when the run starts), so the run always terminates;
* an exported file (``.jsonl`` or ``.jsonl.gz``; one request event, or a packed NDJSON
  message, per line), partitioned the way the Kafka producer would (murmur2 of the
  account id) over ``topics.partitions`` partitions.

Reference data comes from the ``accounts``/``network.intel`` topics as of the range start
(records written at or before it), or from files. The core is :class:`pipeline.flow.Flow`,
the worker's own, so a replay of the same events gives the same alert ids; its output does
not depend on how partitions interleave (each partition's state is its own, and the
campaign stage waits for every partition), so partitions are read in whatever order the
consumer returns them, sorted by timestamp within each fetch. Alerts are written to a
JSONL file, or to a topic (``alerts.replay`` by default; the live ``alerts`` topic only
with an explicit flag). Nothing here reads the wall clock except the progress line.
"""

from __future__ import annotations

import gzip
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from kafka import KafkaConsumer, TopicPartition

from pipeline.codec import encode_alert
from pipeline.enrich.network import NetworkEnricher
from pipeline.flow import NOTHING, Flow, partition_for
from pipeline.records import Alert, DeadLetter
from pipeline.reference import apply_account, apply_intel
from pipeline.settings import Settings
from pipeline.subscribe import end_offsets

try:
    from pipeline import _hot
except ImportError:  # installed without a C compiler: files are split in Python
    _hot = None

#: (partition, offset, key, value, timestamp ms) of one input record
Record = tuple[int, int, bytes | None, bytes | None, int]


class ReplayError(RuntimeError):
    """A replay that cannot start: no such topic, empty range, unreadable file."""


@dataclass(slots=True)
class ReplayResult:
    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    records: int = 0
    seconds: float = 0.0
    flow: Flow | None = None
    tokens_before: dict[str, int] = field(default_factory=dict)  # campaign -> tokens

    @property
    def eps(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


class Progress:
    """One self-rewriting stderr line: records, events/s, percent and ETA (when known)."""

    def __init__(self, total: int | None, enabled: bool, every: int = 50_000) -> None:
        self.total = total
        self.enabled = enabled
        self.every = every
        self.t0 = time.monotonic()
        self.n = 0

    def step(self, n: int) -> None:
        before = self.n
        self.n += n
        if self.enabled and self.n // self.every != before // self.every:
            self._draw()

    def _draw(self, end: str = "") -> None:
        dt = max(1e-9, time.monotonic() - self.t0)
        eps = self.n / dt
        line = f"\rreplay: {self.n:,} records, {eps:,.0f}/s"
        if self.total:
            share = min(1.0, self.n / self.total)
            eta = (self.total - self.n) / eps if eps else 0.0
            bar = "#" * int(share * 30)
            line += f" [{bar:<30s}] {share:5.1%} ETA {eta:5.0f} s"
        sys.stderr.write(line + end)
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            self._draw("\n")


def _ms(ts: float | None) -> int | None:
    return None if ts is None else int(ts * 1000)


def range_consumer(settings: Settings) -> KafkaConsumer:
    """The kafka-python consumer replay reads with (no group; large fetches)."""
    return KafkaConsumer(
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        **settings.kafka.client_kwargs(),
    )


def topic_partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if not parts:
        consumer.close()
        raise ReplayError(f"no such topic: {topic}")
    return parts


def topic_range(
    settings: Settings,
    topic: str,
    start: float | None,
    end: float | None,
    reader: str = "process",
):
    """(record batches, total, partitions) of ``topic`` between two times (epoch seconds,
    compared with the records' Kafka timestamps).

    ``reader="process"`` (the default) fetches in a child process while this one runs the
    core: kafka-python's fetch and record parsing is Python, ~7 us per record, as much as
    half the core's own cost, and on a second CPU it overlaps with the core instead of
    adding to it. The batches are the same either way (``"inline"`` fetches here), so the
    alerts are too.
    """
    if reader not in ("process", "inline"):
        raise ValueError(f"reader must be 'process' or 'inline', not {reader!r}")
    consumer = range_consumer(settings)
    parts = topic_partitions(consumer, topic)
    try:
        first = consumer.beginning_offsets(parts)
        last = end_offsets(consumer, parts)  # captured now: the run terminates
        lo, hi = dict(first), dict(last)
        if start is not None:
            found = consumer.offsets_for_times({tp: _ms(start) for tp in parts})
            lo = {tp: (found[tp].offset if found[tp] is not None else last[tp]) for tp in parts}
        if end is not None:
            found = consumer.offsets_for_times({tp: _ms(end) for tp in parts})
            hi = {tp: (found[tp].offset if found[tp] is not None else last[tp]) for tp in parts}
    except BaseException:
        consumer.close()
        raise
    total = sum(max(0, hi[tp] - lo[tp]) for tp in parts)
    partitions = {tp.partition for tp in parts}
    ranges = {tp.partition: (lo[tp], hi[tp]) for tp in parts if lo[tp] < hi[tp]}
    if reader == "inline":
        return _fetch(consumer, topic, ranges), total, partitions
    consumer.close()  # the reader process opens its own
    return _from_reader_process(settings, topic, ranges), total, partitions


def _fetch(
    consumer: KafkaConsumer, topic: str, ranges: dict[int, tuple[int, int]]
) -> Iterator[list[Record]]:
    """Batches of the records in ``ranges`` (partition -> [lo, hi) offsets), one per poll,
    sorted by timestamp (partitions merged per fetch). Closes ``consumer`` when done."""
    try:
        hi = {TopicPartition(topic, p): b for p, (_, b) in ranges.items()}
        live = list(hi)
        consumer.assign(live)
        for tp in live:
            consumer.seek(tp, ranges[tp.partition][0])
        while live:
            batch: list[Record] = []
            for tp, msgs in consumer.poll(timeout_ms=1000, max_records=50_000).items():
                stop = hi[tp]
                batch.extend(
                    (tp.partition, m.offset, m.key, m.value, m.timestamp)
                    for m in msgs
                    if m.offset < stop
                )
            done = [tp for tp in live if consumer.position(tp) >= hi[tp]]
            if done:
                live = [tp for tp in live if tp not in done]
                consumer.pause(*done)
            batch.sort(key=lambda r: r[4])  # merge partitions by timestamp per fetch
            yield batch
    finally:
        consumer.close()


def _reader_main(settings: Settings, topic: str, ranges: dict[int, tuple[int, int]], queue):
    """The reader process: fetch the ranges and put each batch (a list) on ``queue``, then
    None; or, when it fails, the error's text (a str)."""
    try:
        for batch in _fetch(range_consumer(settings), topic, ranges):
            if batch:
                queue.put(batch)
        queue.put(None)
    except BaseException as exc:  # reported to the parent, which raises it as ReplayError
        queue.put(f"{type(exc).__name__}: {exc}")


def _from_reader_process(
    settings: Settings, topic: str, ranges: dict[int, tuple[int, int]]
) -> Iterator[list[Record]]:
    """The batches of :func:`_fetch`, fetched by a child process (spawned, so that it shares
    no sockets or threads with this one). At most 4 batches wait in the queue; a reader that
    dies or fails raises ReplayError here."""
    import multiprocessing
    import queue as queue_mod

    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue(maxsize=4)
    proc = ctx.Process(target=_reader_main, args=(settings, topic, ranges, q), daemon=True)
    proc.start()
    try:
        while True:
            try:
                item = q.get(timeout=5.0)
            except queue_mod.Empty:
                if not proc.is_alive():
                    code = proc.exitcode
                    raise ReplayError(f"the reader process ended (exit code {code})") from None
                continue
            if item is None:
                return
            if isinstance(item, str):
                raise ReplayError(f"reading {topic}: {item}")
            yield item
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(timeout=10)
        q.close()


def file_records(
    path: Path, partitions: int, native: bool = True, chunk_bytes: int = 1 << 20
) -> tuple[Iterator[list[Record]], int]:
    """Records of an exported NDJSON file (optionally gzipped), partitioned like Kafka: one
    (partition, line number, key, raw, 0) per non-empty line. ``native``: split in C where
    the hot path is built (the Python loop is its reference; tests compare them)."""
    if not path.exists():
        raise ReplayError(f"no such file: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    total = 0
    if path.suffix != ".gz":  # a line count is cheap (C speed); gzip would cost a full pass
        with open(path, "rb") as f:
            while chunk := f.read(1 << 24):
                total += chunk.count(b"\n")

    def read() -> Iterator[list[Record]]:
        with opener(path, "rb") as f:
            batch: list[Record] = []
            for n, line in enumerate(f, start=1):
                raw = line.rstrip(b"\r\n")
                if not raw:
                    continue
                key = _account_key(raw)
                p = partition_for(key, partitions) if key else 0
                batch.append((p, n, key, raw, 0))
                if len(batch) == 10_000:
                    yield batch
                    batch = []
            yield batch

    def read_native() -> Iterator[list[Record]]:
        """The same records, split in C ``chunk_bytes`` at a time (_hot.records)."""
        with opener(path, "rb") as f:
            line, rest = 1, b""
            while chunk := f.read(chunk_bytes):
                data = rest + chunk if rest else chunk
                cut = data.rfind(b"\n") + 1
                batch, line = _hot.records(data, cut, partitions, line)
                rest = data[cut:]
                if batch:
                    yield batch
            batch, line = _hot.records(rest, len(rest), partitions, line)
            yield batch

    return (read() if _hot is None or not native else read_native()), total


def _account_key(raw: bytes) -> bytes | None:
    """The account id of an encoded event without decoding it (the partitioner's key)."""
    i = raw.find(b'"account_id":')
    if i < 0:
        return None
    j = raw.find(b'"', i + 13)
    k = raw.find(b'"', j + 1)
    return raw[j + 1 : k] if j >= 0 and k > j else None


def load_reference(
    settings: Settings,
    flow: Flow,
    accounts_file: Path | None,
    intel_file: Path | None,
    as_of: float | None,
) -> dict[str, int]:
    """Accounts and overrides from files, else from their topics as of ``as_of``."""
    counts = {"accounts": 0, "intel": 0}
    parts = settings.topics.partitions
    if accounts_file is not None:
        for key, value in _jsonl_reference(accounts_file, "account_id"):
            if not apply_account(flow, partition_for(key, parts), key, value):
                counts["accounts"] += 1
    elif settings.kafka.bootstrap:
        for m in _topic_as_of(settings, settings.topics.name("accounts"), as_of):
            if not apply_account(flow, m.partition, m.key, m.value):
                counts["accounts"] += 1
    if intel_file is not None:
        for key, value in _jsonl_reference(intel_file, "cidr"):
            if not apply_intel(flow, key, value):
                counts["intel"] += 1
    elif settings.kafka.bootstrap:
        for m in _topic_as_of(settings, settings.topics.name("intel"), as_of):
            if not apply_intel(flow, m.key, m.value):
                counts["intel"] += 1
    return counts


def _jsonl_reference(path: Path, key_field: str) -> Iterator[tuple[bytes, bytes]]:
    if not path.exists():
        raise ReplayError(f"no such file: {path}")
    with open(path, "rb") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                key = str(orjson.loads(line)[key_field]).encode()
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise ReplayError(f"{path}:{n}: not a record with {key_field!r}: {exc}") from None
            yield key, line.rstrip(b"\r\n")


def _topic_as_of(settings: Settings, topic: str, as_of: float | None):
    from pipeline.subscribe import read_to_end

    cutoff = _ms(as_of)
    try:
        for m in read_to_end(settings, topic):
            if cutoff is None or m.timestamp <= cutoff:
                yield m
    except SystemExit:  # no such topic: nothing to load
        return


def run(
    settings: Settings,
    batches: Iterable[list[Record]],
    flow: Flow,
    progress: Progress,
    topic: str = "replay",
    observe=None,
) -> ReplayResult:
    """Feed every record to the core; collect what comes out. ``observe(key, value,
    result, alerts)``, if given, sees every record (used to count tokens before alerts)."""
    result = ReplayResult(flow=flow)
    t = time.perf_counter()
    for batch in batches:
        if observe is None:  # the common case: runs of ordinary records stay in C
            for out in flow.process_records(batch, topic):
                result.alerts.extend(out.alerts)
                result.dead_letters.extend(out.dead_letters)
        else:  # the observer sees every record, so each comes back to Python
            for p, offset, key, value, _ts in batch:
                out = flow.process(key, value, p, offset, topic)
                observe(key, value, result, out.alerts)
                if out is not NOTHING:  # most records produce nothing (no __bool__ call)
                    result.alerts.extend(out.alerts)
                    result.dead_letters.extend(out.dead_letters)
        result.records += len(batch)
        progress.step(len(batch))
    progress.done()
    result.seconds = time.perf_counter() - t
    return result


def new_flow(settings: Settings, partitions: set[int] | None) -> Flow:
    return Flow(settings.detector, NetworkEnricher.from_settings(settings.network),
                partitions=partitions)  # fmt: skip


def write_jsonl(alerts: list[Alert], path: Path) -> None:
    """One alert per line, in emission order: byte-identical for identical runs."""
    with open(path, "wb") as f:
        for alert in alerts:
            f.write(encode_alert(alert) + b"\n")


def publish(settings: Settings, result: ReplayResult, topic: str) -> None:
    from pipeline.sim.publish import producer

    prod = producer(settings)
    try:
        for a in result.alerts:
            key = a.account_ids[0] if a.kind == "account" else a.alert_id
            prod.send(topic, key=key.encode(), value=encode_alert(a))
        prod.flush()
    finally:
        prod.close()


# --- evaluation against labels, and sweeps --------------------------------------------


def read_labels(path: Path) -> list[dict]:
    """Label rows (JSONL): ``account_id``, ``label`` (attack|benign), and for attacks
    ``campaign`` and ``start`` (epoch seconds or RFC 3339); optional ``scenario``.

    ``xwatch simulate --labels FILE`` writes exactly this format.
    """
    from pipeline.codec import parse_ts

    if not path.exists():
        raise ReplayError(f"no such file: {path}")
    rows = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
                acct, label = str(row["account_id"]), row["label"]
                if label not in ("attack", "benign"):
                    raise ValueError(f"label must be attack or benign, got {label!r}")
                start = row.get("start")
                if isinstance(start, str):
                    start = parse_ts(start, "start")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ReplayError(f"{path}:{n}: not a label row: {exc}") from None
            rows.append(
                {
                    "account_id": acct,
                    "label": label,
                    "campaign": str(row.get("campaign") or acct),
                    "scenario": str(row.get("scenario") or label),
                    "start": float(start) if start is not None else 0.0,
                }
            )
    return rows


def label_figures(result: ReplayResult, labels: list[dict]) -> dict:
    """Precision, recall, false alerts per 10k accounts per day, time-to-detect and
    completion tokens before the first alert, for a replay against labels.

    Accounts seen in the replay and not labelled ``attack`` count as benign.
    """
    from pipeline.evaluate import _attack_figures, _benign_figures

    flow = result.flow
    assert flow is not None
    seen: set[str] = set()
    first_ts, last_ts = [], []
    for sh in flow.shards.values():
        seen.update(sh.windows.accounts)
        if sh.windows.max_ts is not None:
            first_ts.append(sh.windows.first_ts)
            last_ts.append(sh.windows.max_ts)
    days = max(1 / 24, (max(last_ts, default=0) - min(first_ts, default=0)) / 86_400)
    first_alert: dict[str, float] = {}
    for alert in result.alerts:
        if alert.status != "resolved":
            for acct in alert.account_ids:
                first_alert.setdefault(acct, alert.emitted_at)
    attack = [r for r in labels if r["label"] == "attack"]
    attackers = {r["account_id"] for r in attack}
    benign = [a for a in seen if a not in attackers]
    out: dict = {
        "days": round(days, 3),
        "accounts": len(seen),
        "alerts": len(result.alerts),
        "benign": _benign_figures(len(benign), sum(a in first_alert for a in benign), days),
    }
    if attack:
        out["attack"] = _attack_figures(attack, first_alert, set(first_alert),
                                        result.tokens_before)  # fmt: skip
    return out


def tokens_tracker(labels: list[dict]):
    """A per-record hook counting attack completion tokens until each campaign's first
    alert (decodes only the records of labelled attack accounts)."""
    rows = {r["account_id"]: r for r in labels if r["label"] == "attack"}
    extracted: dict[str, int] = {}

    def observe(key: bytes | None, value: bytes | None, result: ReplayResult, alerts) -> None:
        if key is not None and value and (row := rows.get(key.decode(errors="replace"))):
            try:
                doc = orjson.loads(value)
            except orjson.JSONDecodeError:
                doc = None
            if isinstance(doc, dict) and isinstance(doc.get("completion_tokens"), int):
                camp = row["campaign"]
                extracted[camp] = extracted.get(camp, 0) + doc["completion_tokens"]
        for alert in alerts:
            for acct in alert.account_ids:
                hit = rows.get(acct)
                if hit is not None and hit["campaign"] not in result.tokens_before:
                    result.tokens_before[hit["campaign"]] = extracted.get(hit["campaign"], 0)

    return observe


def sweep_grid(specs: list[str]) -> list[dict[str, str]]:
    """``["detector.z_alert=5,6,7", "detector.z_learn=3,4"]`` -> every combination."""
    grid: list[dict[str, str]] = [{}]
    for spec in specs:
        name, sep, values = spec.partition("=")
        options = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name.strip() or not options:
            raise ReplayError(f"--sweep wants key=v1,v2,...; got {spec!r}")
        grid = [{**g, name.strip(): v} for g in grid for v in options]
    return grid


def _recall(f: dict) -> float:
    return _get(f, "attack", "member_recall", 0.0)


def _ttd(f: dict) -> float:
    return _get(f, "attack", "ttd_median_s", float("inf"))


#: name -> sort key over a variant's figures (smaller sorts first)
OBJECTIVES = {
    "recall": lambda f: (-_recall(f), _false(f), _ttd(f)),
    "false": lambda f: (_false(f), -_recall(f), _ttd(f)),
    "ttd": lambda f: (_ttd(f), _false(f), -_recall(f)),
    "balanced": lambda f: (_false(f) - 10 * _recall(f), _ttd(f)),  # recall counts 10x
}


def _get(f: dict, group: str, key: str, default: float) -> float:
    value = (f.get(group) or {}).get(key)
    return default if value is None else float(value)


def _false(f: dict) -> float:
    return float(f["benign"]["false_alerts_per_10k_per_day"])
