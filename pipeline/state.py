"""Checkpoints: learned state saved to a compacted topic, tied to input offsets.

A *unit* of state is what one consumer-group partition owns: ``requests:P`` is the shard of
input partition P (windows, baselines, models, open episodes, its record counters);
``digests:0`` is the campaign stage. A :class:`Snapshot` holds a unit's state together with
``next_offset``, the input offset after the last record that state contains, so state and
position can never disagree: a worker that takes a unit over restores the snapshot,
commits ``next_offset`` for the group, and Faust's own seek to the committed offset
resumes exactly there. Records between the snapshot and a crash are processed again,
deterministically, so they produce the same alerts, dead letters and digests as the first
time; the worker drops those it finds already written (:func:`read_back`).

On the topic a snapshot is ``chunks`` records ``<unit>/<generation>/<i>`` (each at most
:data:`CHUNK` bytes, so no broker limit is hit) followed by a manifest under the key
``<unit>``. The manifest is written last: a crash mid-snapshot leaves the previous manifest
and its chunks in place. After a manifest, the previous generation's chunks get tombstones,
so compaction keeps one generation per unit. The payload is the pickled state, compressed,
with its SHA-256 in the manifest; with ``state.secret`` set, an HMAC-SHA256 instead, and a
snapshot without a valid one is refused. Pickle executes code when loaded: the state topic
must be writable by the workers only (Kafka ACLs), as Faust's own changelogs must be.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import logging
import pickle
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.codec import format_ts
from pipeline.records import Alert
from pipeline.settings import Settings
from pipeline.subscribe import read_range

log = logging.getLogger("xwatch.state")

CHUNK = 512 * 1024
VERSION = 8  # 2: distinct values and fingerprints in integer tables (features.table);
# 3: each account's view phase (features.windows.view_phase); 4: an account's buckets in one
# flat array; 5: its recent event ids in its seen table's header; 6: its learned histories
# there too; 7: its buckets as 84-byte records (features.windows.BUCKET) instead of K
# doubles (features.windows.AccountState, which also unpickles versions 3 to 6); 8: a
# cohort anomaly model not yet warm as its learned inputs (detect.population.CohortAnomaly,
# which goes on learning a model of the earlier versions)
READABLE = frozenset({3, 4, 5, 6, 7, VERSION})


class SnapshotRefused(ValueError):
    """A snapshot failed its integrity or signature check, or is of an unknown version."""


@dataclass(slots=True)
class Snapshot:
    unit: str
    next_offset: int
    taken_at_ms: int  # the writer's wall clock; only bounds the read-back of outputs
    state: Any


def unit_name(logical: str, partition: int) -> str:
    return f"{logical}:{partition}"


def _digest(payload: bytes, secret: str | None) -> str:
    if secret:
        return "hmac-sha256:" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def encode_snapshot(
    snap: Snapshot, generation: int, secret: str | None = None
) -> list[tuple[bytes, bytes]]:
    """The (key, value) records of one snapshot, manifest last.

    The collector is off while the state is pickled: pickling allocates a tuple per object,
    which can set off a full collection of the whole heap mid-snapshot, and a worker's
    agent is paused for as long as this takes.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        pickled = pickle.dumps(snap.state, protocol=5)
    finally:
        if collecting:
            gc.enable()
    payload = zlib.compress(pickled, 1)
    chunks = [payload[i : i + CHUNK] for i in range(0, len(payload), CHUNK)] or [b""]
    records = [(f"{snap.unit}/{generation}/{i}".encode(), c) for i, c in enumerate(chunks)]
    manifest = {
        "version": VERSION,
        "unit": snap.unit,
        "generation": generation,
        "chunks": len(chunks),
        "bytes": len(payload),
        "next_offset": snap.next_offset,
        "taken_at_ms": snap.taken_at_ms,
        "digest": _digest(payload, secret),
    }
    records.append((snap.unit.encode(), orjson.dumps(manifest)))
    return records


def tombstones(unit: str, generation: int, chunks: int) -> list[tuple[bytes, None]]:
    """Deletes for a superseded generation's chunks (compaction then drops them)."""
    return [(f"{unit}/{generation}/{i}".encode(), None) for i in range(chunks)]


class SnapshotReader:
    """Collects, from the state topic's records in order, the latest complete snapshot of
    each wanted unit. Pure: feed it (key, value) pairs, then :meth:`result`."""

    def __init__(self, units: Iterable[str], secret: str | None = None) -> None:
        self.units = set(units)
        self.secret = secret
        self._latest: dict[str, dict] = {}
        self._chunks: dict[tuple[str, int], dict[int, bytes]] = {}

    def feed(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        text = key.decode("utf-8", "replace")
        unit, sep, rest = text.partition("/")
        if unit not in self.units:
            return
        if not sep:  # a manifest
            if value is None:
                self._latest.pop(unit, None)
                return
            try:
                manifest = orjson.loads(value)
                int(manifest["generation"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                return  # not a manifest of ours; the previous one stands
            self._latest[unit] = manifest
            gen = manifest["generation"]
            for k in [k for k in self._chunks if k[0] == unit and k[1] < gen]:
                del self._chunks[k]
            return
        gen_text, _, index_text = rest.partition("/")
        try:
            gen, index = int(gen_text), int(index_text)
        except ValueError:
            return  # not a chunk key of ours
        slot = self._chunks.setdefault((unit, gen), {})
        if value is None:
            slot.pop(index, None)
        else:
            slot[index] = value

    def result(self) -> dict[str, Snapshot | SnapshotRefused]:
        """unit -> its snapshot, or why it could not be used. Units with none are absent."""
        out: dict[str, Snapshot | SnapshotRefused] = {}
        for unit, m in self._latest.items():
            try:
                out[unit] = self._assemble(unit, m)
            except SnapshotRefused as exc:
                out[unit] = exc
            except (KeyError, TypeError, ValueError, zlib.error, pickle.UnpicklingError) as exc:
                out[unit] = SnapshotRefused(f"{unit}: unreadable snapshot: {exc!r}")
        return out

    def _assemble(self, unit: str, m: dict) -> Snapshot:
        if m.get("version") not in READABLE:
            raise SnapshotRefused(f"{unit}: snapshot version {m.get('version')!r} unknown")
        parts = self._chunks.get((unit, m["generation"]), {})
        if any(i not in parts for i in range(m["chunks"])):
            raise SnapshotRefused(f"{unit}: generation {m['generation']} is missing chunks")
        payload = b"".join(parts[i] for i in range(m["chunks"]))
        if self.secret and not m["digest"].startswith("hmac-sha256:"):
            raise SnapshotRefused(f"{unit}: unsigned snapshot refused (state.secret is set)")
        expected = _digest(payload, self.secret if m["digest"].startswith("hmac") else None)
        if not hmac.compare_digest(expected, m["digest"]):
            raise SnapshotRefused(f"{unit}: snapshot digest mismatch")
        state = pickle.loads(zlib.decompress(payload))  # integrity checked above
        return Snapshot(unit, m["next_offset"], m["taken_at_ms"], state)

    def generations(self) -> dict[str, tuple[int, int]]:
        """unit -> (generation, chunks) of its latest manifest: what the next one supersedes."""
        return {u: (m["generation"], m["chunks"]) for u, m in self._latest.items()}


def read_snapshots(settings: Settings, units: Iterable[str]) -> SnapshotReader:
    """Read the state topic to its current end (blocking; run it in an executor)."""
    reader = SnapshotReader(units, settings.state.secret)
    for msg in read_range(settings, [settings.topics.name("state")]):
        reader.feed(msg.key, msg.value)
    return reader


def read_back(settings: Settings, since_ms: int | None) -> tuple[set, set]:
    """Identities of alerts and dead letters already written since ``since_ms`` (None: all).

    After a crash, the records between a unit's snapshot and the crash are processed again
    and give the same alerts and dead letters; these sets let the worker skip the ones
    that reached the topics the first time. An alert is (alert_id, status, emitted_at); a
    dead letter is its source (topic, partition, offset, line).
    """
    alerts: set[tuple] = set()
    dead: set[tuple] = set()
    t = settings.topics
    for msg in read_range(settings, [t.name("alerts"), t.name("dlq")], since_ms):
        try:
            doc = orjson.loads(msg.value)
            if msg.topic == t.name("alerts"):
                alerts.add((doc["alert_id"], doc["status"], doc["emitted_at"]))
            else:
                s = doc["source"]
                dead.add((s["topic"], s["partition"], s["offset"], s.get("line")))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue  # not written by a worker: nothing to deduplicate against
    return alerts, dead


def alert_identity(alert: Alert) -> tuple:
    """What makes an alert record the same emission: id, status and (encoded) event time."""
    return (alert.alert_id, alert.status, format_ts(alert.emitted_at))


Send = Callable[[bytes, bytes | None], Awaitable[Any]]


class Checkpointer:
    """Saves and restores units for a worker; Kafka I/O through the given callables.

    ``send(key, value)`` queues a record on the state topic and ``flush()`` waits until
    everything queued (alerts, dead letters and digests included) is written: a snapshot is
    only written after the outputs of the records it contains, so no output can be lost
    between the two. Reads run in an executor (kafka-python blocks).
    """

    def __init__(self, settings: Settings, send: Send, flush: Callable[[], Awaitable[Any]]) -> None:
        self.settings = settings
        self._send = send
        self._flush = flush
        self._generations: dict[str, tuple[int, int]] = {}
        self.saved = 0  # snapshots written by this process
        self.restored = 0
        self.refused = 0
        self.alerts_sent: set[tuple] = set()  # identities read back after a restore
        self.dead_sent: set[tuple] = set()
        self.already_written = 0  # outputs skipped because a previous run wrote them
        self.saved_offsets: dict[str, int] = {}  # unit -> next_offset of its last snapshot
        # that is on the broker (set after the flush that writes it)

    async def save(self, units: dict[str, tuple[int, Any]]) -> None:
        """Write a snapshot of each unit: name -> (next_offset, state)."""
        if not units:
            return
        await self._flush()
        now = int(time.time() * 1000)
        stale: list[tuple[bytes, None]] = []
        for unit, (next_offset, state) in sorted(units.items()):
            prev = self._generations.get(unit)
            gen = max(prev[0] + 1, now) if prev else now
            records = encode_snapshot(
                Snapshot(unit, next_offset, now, state), gen, self.settings.state.secret
            )
            for key, value in records:
                await self._send(key, value)
            if prev:
                stale += tombstones(unit, *prev)
            self._generations[unit] = (gen, len(records) - 1)
        await self._flush()
        for unit, (next_offset, _) in units.items():  # written only now: /accounting, which
            self.saved_offsets[unit] = next_offset  # can answer during the flush, says so
        for key, value in stale:
            await self._send(key, value)
        self.saved += len(units)

    async def restore(self, units: Iterable[str]) -> dict[str, Snapshot]:
        """The latest usable snapshot of each unit (absent: start it from the beginning),
        and the outputs already written since the oldest of them (:func:`read_back`)."""
        units = sorted(units)
        if not units:
            return {}
        loop = asyncio.get_running_loop()
        reader = await loop.run_in_executor(None, read_snapshots, self.settings, units)
        found: dict[str, Snapshot] = {}
        for unit, snap in reader.result().items():
            if isinstance(snap, SnapshotRefused):
                self.refused += 1
                log.error("snapshot refused, %s starts from the beginning: %s", unit, snap)
            else:
                found[unit] = snap
        self._generations.update(reader.generations())
        self.saved_offsets.update({u: snap.next_offset for u, snap in found.items()})
        complete = all(u in found for u in units)
        since = min(s.taken_at_ms for s in found.values()) - 10_000 if complete else None
        alerts, dead = await loop.run_in_executor(None, read_back, self.settings, since)
        self.alerts_sent |= alerts
        self.dead_sent |= dead
        self.restored += len(found)
        return found
