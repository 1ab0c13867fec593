"""Checkpoints without a broker: the snapshot records, what a reader makes of them
(crash mid-snapshot, tampering, signatures), and that a flow restored from snapshots
taken at any point continues exactly as if it had never stopped."""

from __future__ import annotations

import random

import orjson
import pytest

from pipeline.codec import encode_alert, encode_request
from pipeline.flow import Flow, partition_for
from pipeline.records import Source
from pipeline.settings import Settings
from pipeline.sim.scenarios import Simulation
from pipeline.state import (
    CHUNK,
    VERSION,
    Snapshot,
    SnapshotReader,
    SnapshotRefused,
    encode_snapshot,
    tombstones,
)


def _read(records, units=("requests:0",), secret=None) -> dict:
    reader = SnapshotReader(units, secret)
    for key, value in records:
        reader.feed(key, value)
    return reader.result()


def test_large_state_round_trips_in_chunks() -> None:
    state = {"blob": random.Random(1).randbytes(3 * CHUNK), "n": 7}  # incompressible
    records = encode_snapshot(Snapshot("requests:0", 1234, 99, state), generation=5)
    assert len(records) == 4 + 1  # four chunks, then the manifest
    assert records[-1][0] == b"requests:0", "the manifest comes last"
    assert all(len(v) <= CHUNK for _, v in records[:-1])
    snap = _read(records)["requests:0"]
    assert (snap.next_offset, snap.taken_at_ms, snap.state) == (1234, 99, state)


def test_a_crash_mid_snapshot_leaves_the_previous_one_usable() -> None:
    old = encode_snapshot(Snapshot("requests:0", 10, 1, "old"), generation=1)
    new = encode_snapshot(Snapshot("requests:0", 20, 2, "new"), generation=2)
    assert _read(old + new[:-1])["requests:0"].state == "old"  # manifest never written
    done = old + new + tombstones("requests:0", 1, len(old) - 1)
    assert _read(done)["requests:0"].state == "new"


def test_other_units_are_ignored_and_absent_units_are_absent() -> None:
    records = encode_snapshot(Snapshot("requests:1", 5, 1, "one"), generation=1)
    assert _read(records, units=("requests:0",)) == {}
    assert _read(records, units=("requests:1", "requests:2")).keys() == {"requests:1"}


def test_foreign_records_on_the_state_topic_are_ignored() -> None:
    records = encode_snapshot(Snapshot("requests:0", 5, 1, "ok"), generation=1)
    junk = [(b"requests:0/x/y", b"?"), (b"requests:0", b"not json"), (None, b"x")]
    assert _read(records + junk)["requests:0"].state == "ok"
    odd = [*records, (b"requests:0", b'{"generation": 9}')]  # a manifest missing its fields
    assert isinstance(_read(odd)["requests:0"], SnapshotRefused)


def test_tampered_or_unsigned_snapshots_are_refused() -> None:
    records = encode_snapshot(Snapshot("requests:0", 5, 1, {"a": 1}), generation=1)
    key, chunk = records[0]
    tampered = [(key, chunk[:-1] + bytes([chunk[-1] ^ 1])), *records[1:]]
    assert isinstance(_read(tampered)["requests:0"], SnapshotRefused)
    assert isinstance(_read(records, secret="k")["requests:0"], SnapshotRefused)  # unsigned
    signed = encode_snapshot(Snapshot("requests:0", 5, 1, {"a": 1}), 1, secret="k")
    assert _read(signed, secret="k")["requests:0"].state == {"a": 1}
    assert isinstance(_read(signed, secret="other")["requests:0"], SnapshotRefused)


def test_the_previous_versions_are_read_older_ones_are_refused() -> None:
    """Versions 3 to 6 differ only in how an account's buckets, scalars (event ids, last
    event time, hours, views) and learned histories were held, and their accounts unpickle
    into today's layout (tests/unit/test_windows.py); 7 only in that every cohort model
    was built (tests/unit/test_detectors.py); 2 is refused by name."""
    records = encode_snapshot(Snapshot("requests:0", 5, 1, "state"), generation=1)
    versions = (
        (VERSION, True), (7, True), (6, True), (5, True), (4, True), (3, True),
        (2, False), (None, False),
    )  # fmt: skip
    for version, readable in versions:
        manifest = orjson.loads(records[-1][1])
        manifest["version"] = version
        got = _read([*records[:-1], (records[-1][0], orjson.dumps(manifest))])["requests:0"]
        if readable:
            assert got.state == "state"
        else:
            assert isinstance(got, SnapshotRefused)
            assert f"snapshot version {version!r} unknown" in str(got)


@pytest.mark.parametrize("cut", [9_000, 31_000])
def test_flow_restored_from_snapshots_continues_identically(network, cut: int) -> None:
    """Snapshot every shard and the campaign stage at ``cut``, restore them into a new
    flow through the real records, continue: the alerts are the uninterrupted run's."""
    cfg = Settings.load(environ={}).detector
    sim = Simulation(seed=7, accounts=300, duration=2400, rate=15.0, scenarios=("burst", "hydra"))
    msgs, offsets = [], [0, 0, 0, 0]
    for ev in sim.events():
        key = ev.account_id.encode()
        p = partition_for(key, 4)
        msgs.append((key, encode_request(ev), p, offsets[p]))
        offsets[p] += 1

    def fresh() -> Flow:
        flow = Flow(cfg, network, partitions={0, 1, 2, 3})
        for acct in sim.accounts():
            flow.accounts.put(acct)
        return flow

    def run(cut_at: int | None) -> list[bytes]:
        flow, out = fresh(), []
        for i, (key, raw, p, off) in enumerate(msgs):
            if i == cut_at:
                records = []
                for q, sh in flow.shards.items():
                    records += encode_snapshot(Snapshot(f"requests:{q}", sh.next_offset, 0, sh), 1)
                records += encode_snapshot(Snapshot("digests:0", 0, 0, flow.stage), 1)
                units = [f"requests:{q}" for q in range(4)] + ["digests:0"]
                restored = _read(records, units=units)
                flow = fresh()
                for q in range(4):
                    flow.adopt_shard(q, restored[f"requests:{q}"].state)
                flow.stage = restored["digests:0"].state
            out += flow.process_message(key, raw, Source("t", p, off)).alerts
        return [encode_alert(a) for a in out]

    base = run(None)
    assert any(b'"campaign"' in a for a in base)
    assert run(cut) == base
