"""The C hot path (pipeline/_hot.c) against the Python reference path.

For any message sequence, a flow using the C path and one kept on the Python path
(``native=False``) must produce the same alerts, dead letters and counters, and end in the
same state (every field of every object, as snapshots would pickle it). The C path
handles ordinary events and hands everything else to the Python path, so the generated
messages lean on the edges: addresses in every spelling, timestamps with and without
fractions or offsets, integers sent as floats, optional fields absent, null or wrong,
duplicates, late and far-future events, bad JSON and packed messages; and the JSON itself
in other spellings than orjson's (whitespace, escapes, key order, repeated keys, numbers
written otherwise), which the C path's scanner must either read exactly as orjson does or
leave to orjson.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterator
from datetime import UTC, datetime
from types import BuiltinFunctionType, FunctionType, MethodType

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import _hot  # built with the package (pyproject.toml); a failure here is one
from pipeline.codec import (
    RequestEvent,
    _fast_request,  # the checks the C path mirrors
    decode_request,
    encode_alert,
    encode_dead_letter,
    encode_request,
    normalize_ip,
)
from pipeline.enrich.network import NetworkEnricher, parse
from pipeline.features.windows import PT, RISKY, K, event_id_hash, unpack_buckets
from pipeline.flow import Flow, is_packed, partition_for
from pipeline.records import IntelRecord, Source
from pipeline.settings import Settings
from pipeline.sim.scenarios import Simulation

CFG = Settings.load(environ={}).detector
BASE = 1_795_000_000  # 2026-11-18


def run_both(network: NetworkEnricher, messages: list[tuple[bytes | None, bytes | None, int]]):
    """Feed ``messages`` (key, value, partition) to a C-path and a Python-path flow, one
    message at a time, and to a third flow as replay does (``Flow.process_records``: runs
    of ordinary events stay in C, ``_hot.feed``), in batches of a few records.

    Returns the counters and how many events the C path counted itself.
    """
    for _, value, _ in messages:  # the C path only takes timestamps whose second is cached
        for line in (value or b"").split(b"\n"):
            decode_request(line)
    results = []
    taken = [0]
    for native, batched in ((True, False), (False, False), (True, True)):
        # (flows make a partition's shard at its first record: in the batched flow, that
        # record is one _hot.feed hands back to process())
        flow = Flow(CFG, network, partitions={0, 1}, native=native)
        if native and not batched:
            flow._event = _counting(flow._event, taken)
        outputs = []
        if batched:
            records = [(p, offset, k, v, 0) for offset, (k, v, p) in enumerate(messages)]
            for start in range(0, len(records), 7):
                for out in flow.process_records(records[start : start + 7], "t"):
                    outputs.append(out)
            outputs = [
                (
                    [encode_alert(a) for out in outputs for a in out.alerts],
                    [encode_dead_letter(d) for out in outputs for d in out.dead_letters],
                )
            ]
        for offset, (key, value, partition) in enumerate([] if batched else messages):
            out = flow.process_message(key, value, Source("t", partition, offset))
            outputs.append(
                (
                    [encode_alert(a) for a in out.alerts],
                    [encode_dead_letter(d) for d in out.dead_letters],
                )
            )
        for sh in flow.shards.values():
            sh.windows.native = None  # which table code ran: the one intended difference
        shards = {p: _plain(sh) for p, sh in sorted(flow.shards.items())}
        results.append((outputs, flow.counters, shards))
    (native_out, native_counts, native_state), (py_out, py_counts, py_state) = results[:2]
    assert native_out == py_out
    assert native_counts == py_counts
    assert native_state == py_state
    batched_out, batched_counts, batched_state = results[2]
    alerts = [a for message_alerts, _ in native_out for a in message_alerts]
    dead = [d for _, message_dead in native_out for d in message_dead]
    assert batched_out == [(alerts, dead)]
    assert batched_counts == native_counts
    assert batched_state == native_state
    return native_counts, taken[0]


def _counting(event, taken: list[int]):
    def counted(*args):
        r = event(*args)
        taken[0] += r >= 0
        return r

    return counted


def _plain(obj: object, path: frozenset[int] = frozenset()) -> object:
    """The state under ``obj`` as nested tuples: equal state gives equal values even where
    one path shares a string between accounts (the Python path's cached canonical address)
    and the other holds equal copies, which pickled bytes would tell apart."""
    if obj is None or isinstance(obj, bool | int | str | bytes):
        return obj
    if isinstance(obj, float):
        return repr(obj)
    if isinstance(obj, type | FunctionType | BuiltinFunctionType | MethodType):
        return getattr(obj, "__qualname__", repr(obj))
    if id(obj) in path:
        return "<cycle>"
    path = path | {id(obj)}
    if isinstance(obj, list | tuple):
        return tuple(_plain(x, path) for x in obj)
    if isinstance(obj, dict):
        return tuple((_plain(k, path), _plain(v, path)) for k, v in obj.items())
    if isinstance(obj, set | frozenset):
        return frozenset(_plain(x, path) for x in obj)
    if isinstance(obj, array):
        return (obj.typecode, tuple(repr(x) for x in obj))
    reduced = obj.__reduce_ex__(2)
    parts = [type(obj).__qualname__]
    for part in reduced[1:]:
        parts.append(_plain(list(part) if isinstance(part, Iterator) else part, path))
    return tuple(parts)


def test_the_c_path_is_taken() -> None:
    """Guards the comparisons below against comparing the Python path with itself."""
    flow = Flow(CFG, NetworkEnricher(), partitions={0})
    ev = _event(0, "a1", 1.0)
    flow.process_message(b"a1", orjson.dumps(ev), Source("t", 0, 0))  # first: Python path
    ws = flow.shards[0].windows
    ev2 = _event(1, "a1", 1.5)  # the same second: its timestamp head is cached
    assert _hot.event(ws, flow.network, orjson.dumps(ev2), 1e9) >= 0
    assert _hot.event(ws, flow.network, orjson.dumps(ev2), 1e9) == -1  # a duplicate now
    assert _hot.event(ws, flow.network, b"{", 1e9) == -1


@given(st.binary(max_size=40) | st.lists(st.sampled_from([b" ", b"\t", b"\n", b"\r", b"\x0b",
        b"\x0c", b"{}", b"x", b"\xa0"]), max_size=12).map(b"".join))  # fmt: skip
def test_packed_messages_are_recognised_as_python_does(raw: bytes) -> None:
    """The C path's test for a packed message is flow.is_packed (bytes.strip's whitespace)."""
    flow = Flow(CFG, NetworkEnricher(), partitions={0})
    flow.process_message(b"a1", orjson.dumps(_event(0, "a1", 1.0)), Source("t", 0, 0))
    got = _hot.event(flow.shards[0].windows, flow.network, raw, 1e9)
    assert (got == -2) == is_packed(raw)
    assert got < 0  # none of these is an event


@given(st.binary(max_size=64), st.integers(1, 1000))
def test_partition_is_kafkas_murmur2_partitioner(key: bytes, partitions: int) -> None:
    from kafka.partitioner.default import murmur2

    assert _hot.partition(key, partitions) == (murmur2(key) & 0x7FFFFFFF) % partitions
    assert partition_for(key, partitions) == _hot.partition(key, partitions)


def _same_doubles(a, b) -> bool:
    """Equal to the bit (NaN to NaN, and a zero's sign kept)."""
    import struct

    bits = struct.Struct("d").pack
    return len(a) == len(b) and all(
        (x != x and y != y) or bits(x) == bits(y) for x, y in zip(a, b, strict=True)
    )


_floats = st.floats(allow_nan=True, allow_infinity=False, width=64)
_logs = st.lists(st.floats(-5, 30), min_size=8, max_size=8)
_moments = st.lists(_floats, min_size=8, max_size=8)


@settings(max_examples=300)
@given(_moments, _moments, _logs, st.floats(0.0, 1.0))
def test_baseline_arithmetic_is_the_pythons_to_the_bit(mean, sq, logs, alpha) -> None:
    """Every scored view fades its cohort's baselines (_hot.ew_learn) and takes z-scores
    against them (_hot.zs): the same doubles as the Python reference, NaN included."""
    from pipeline.detect.population import MIN_STD, ew_learn_py, zs_py

    got, want = _hot.ew_learn(mean, sq, logs, alpha), ew_learn_py(mean, sq, logs, alpha)
    assert all(_same_doubles(g, w) for g, w in zip(got, want, strict=True))
    assert _same_doubles(_hot.zs(mean, sq, logs, MIN_STD), zs_py(mean, sq, logs, MIN_STD))


@settings(max_examples=300)
@given(
    st.lists(_floats, min_size=6, max_size=6).map(lambda v: [abs(v[0]) % 1e6, *v[1:]]),
    st.tuples(st.floats(-5, 30), st.floats(-5, 30)),
    st.sampled_from([0.05, 0.1, 0.3]),
    _floats,
    st.sampled_from([60.0, 3600.0]),
)
def test_an_accounts_history_fades_as_in_python_to_the_bit(s, logs, alpha, at, unit) -> None:
    """An account's own history (_hot.learn_stats, in place) against the Python reference,
    NaN included: max() keeps its first argument when the other is NaN."""
    from pipeline.detect.account import fade_py

    c, py = array("d", s), array("d", s)
    _hot.learn_stats(c, logs, alpha, at, unit)
    fade_py(py, logs, alpha, at, unit)
    assert _same_doubles(c, py)


def test_the_baseline_kernels_refuse_what_they_cannot_read() -> None:
    import pytest

    with pytest.raises(ValueError, match="a list of 8 floats"):
        _hot.ew_learn([0.0] * 7, [0.0] * 8, [0.0] * 8, 0.1)
    with pytest.raises(TypeError):
        _hot.zs([0.0] * 8, [0.0] * 8, ["x"] * 8, 0.25)
    with pytest.raises(ValueError, match="does not match"):
        _hot.learn_stats(array("d", [0.0] * 5), (1.0, 2.0), 0.1, 0.0, 60.0)
    with pytest.raises(ValueError, match="does not match"):
        _hot.learn_stats(array("f", [0.0] * 6), (1.0, 2.0), 0.1, 0.0, 60.0)


@given(st.text(max_size=300))
def test_event_id_hash_is_blake2b(text: str) -> None:
    try:
        data = text.encode()
    except UnicodeEncodeError:
        return  # lone surrogates: both refuse (the Python path dead-letters them)
    expected = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")
    assert _hot.event_id_hash(text) == expected == event_id_hash(text)


def test_whole_simulation_with_attacks_is_identical(network: NetworkEnricher) -> None:
    sim = Simulation(seed=11, accounts=300, duration=3 * 3600, rate=12.0)
    messages = []
    for ev in sim.events():
        key = ev.account_id.encode()
        messages.append((key, encode_request(ev), partition_for(key, 2)))
    counts, taken = run_both(network, messages)
    assert counts.processed > 100_000 and counts.alerts > 0
    assert taken > 0.99 * counts.processed


def test_overrides_take_the_enricher_path(network: NetworkEnricher) -> None:
    enricher = NetworkEnricher(network._builtin, network._mmdb)
    enricher.overrides.put(IntelRecord("203.0.113.0/24", "proxy", "corp"))
    messages = [
        (b"a1", orjson.dumps(_event(i, "a1", i * 7.0, ip=f"203.0.113.{i % 9}")), 0)
        for i in range(400)
    ]
    counts, taken = run_both(enricher, messages)
    assert taken == counts.processed - 1  # all but the partition's first event


def test_the_c_path_reads_cached_addresses_by_their_key(network: NetworkEnricher) -> None:
    """An IPv4 address the enricher has cached costs the C path no Python call when its
    memo does not hold it: C makes the cache's key (network.address_key) itself. An IPv6
    address goes to the enricher's own lookup."""
    enricher = NetworkEnricher(network._builtin, network._mmdb)
    flow = Flow(CFG, enricher, partitions={0})
    flow.process_message(b"a1", orjson.dumps(_event(0, "a1", 1.0)), Source("t", 0, 0))
    ips = ["73.15.2.3", "8.8.8.8", "100.64.0.1", "2601:1c0::5"]
    for ip in ips:
        enricher.lookup(ip)
    calls: list[str] = []
    real = enricher.lookup
    enricher.lookup = lambda ip, at=0.0: calls.append(ip) or real(ip, at)  # type: ignore[method-assign]
    ws = flow.shards[0].windows
    for i, ip in enumerate(ips, start=1):
        enricher.hot_memo = None  # a fresh memo: only the cache can answer
        assert _hot.event(ws, enricher, orjson.dumps(_event(i, "a1", 1.2, ip=ip)), 1e9) == 0
    assert calls == ["2601:1c0::5"]
    # an IPv4 address not cached yet: the enricher's lookup_parsed, with C's parse of it
    parsed: list[tuple] = []
    real_parsed = enricher.lookup_parsed
    enricher.lookup_parsed = lambda *a: parsed.append(a) or real_parsed(*a)  # type: ignore[method-assign]
    raw = orjson.dumps(_event(9, "a1", 1.3, ip="9.9.9.9"))
    assert _hot.event(ws, enricher, raw, 1e9) == 0
    assert parsed == [(4, parse("9.9.9.9")[1], "9.9.9.9", BASE + 1.3)]
    assert enricher._cache[parse("9.9.9.9")[1]] == real("9.9.9.9")
    assert calls == ["2601:1c0::5"]


def test_memoised_networks_give_way_to_overrides(network: NetworkEnricher) -> None:
    """The C path memoises each address's network keys while there are no overrides; an
    override arriving later must still win, as on the Python path."""
    states, risky = [], []
    for native in (True, False):
        enricher = NetworkEnricher(network._builtin, network._mmdb)
        flow = Flow(CFG, enricher, partitions={0}, native=native)
        for i in range(600):
            if i == 300:  # addresses memoised by now; they become a proxy network
                enricher.overrides.put(IntelRecord("198.51.100.0/24", "proxy", "corp"))
            ev = _event(i, "a1", i * 2.0, ip=f"198.51.100.{i % 5}")
            flow.process_message(b"a1", orjson.dumps(ev), Source("t", 0, i))
        st = flow.shards[0].windows.accounts["a1"]
        risky.append(sum(unpack_buckets(st.buckets)[RISKY::K]))  # every bucket's RISKY counter
        for sh in flow.shards.values():
            sh.windows.native = None
        states.append(_plain(flow.shards[0]))
    assert states[0] == states[1]
    assert risky[0] > 0


def test_fingerprint_cap_and_expiry(network: NetworkEnricher) -> None:
    """One account cycling far more prompt fingerprints than it remembers (FP_CAP)."""
    messages = [
        (b"a1", orjson.dumps(_event(i, "a1", i * 0.5, fp=f"fp{i % 150}")), 0) for i in range(3000)
    ]
    counts, taken = run_both(network, messages)
    assert taken == counts.processed - 1


def test_a_count_past_32_bits_saturates_alike_on_both_paths(network: NetworkEnricher) -> None:
    """Fifty requests of 100 million prompt tokens (the schema's maximum) in one minute:
    the bucket's prompt-token count (a 32-bit field) stops at 2**32 - 1 on both paths, as
    does the hour accumulator it is folded into, and the paths' states stay equal."""
    messages = []
    for i in range(50):
        doc = _event(i, "a1", 20 + i * 0.5)  # BASE + 20 s starts a minute
        doc["prompt_tokens"] = 100_000_000
        messages.append((b"a1", orjson.dumps(doc), 0))
    messages.append((b"b1", orjson.dumps(_event(99, "b1", 200.0)), 0))  # closes a1's minute
    flow = Flow(CFG, network, partitions={0})
    for offset, (key, value, partition) in enumerate(messages):
        flow.process_message(key, value, Source("t", partition, offset))
    pts = unpack_buckets(flow.shards[0].windows.accounts["a1"].buckets)[PT::K]
    assert pts.tolist() == [2**32 - 1] * 2  # the hour accumulator, the closed minute
    run_both(network, messages)


def test_late_events_older_than_their_hour(network: NetworkEnricher) -> None:
    """Late events (behind the watermark) whose time precedes everything their account's
    hour accumulator holds: it keeps the earliest time of the hour on both paths."""
    late = 0
    messages = [(b"a1", orjson.dumps(_event(0, "a1", 100.0)), 0)]
    for i in range(1, 120):  # another account moves the partition's clock on
        messages.append((b"b1", orjson.dumps(_event(i, "b1", 100.0 + 5 * i)), 0))
        if i % 30 == 0:  # a1: a late event older than its first, then an ordinary one
            messages.append((b"a1", orjson.dumps(_event(1000 + i, "a1", 40.0 + i / 10)), 0))
            messages.append((b"a1", orjson.dumps(_event(2000 + i, "a1", 100.0 + 5 * i)), 0))
            late += 1
    flow = Flow(CFG, network, partitions={0})
    for offset, (key, value, p) in enumerate(messages):
        flow.process_message(key, value, Source("t", p, offset))
    assert flow.shards[0].windows.late_events == late
    run_both(network, messages)


IPS = (
    "203.0.113.7",
    "198.51.100.23",
    "8.8.8.8",
    "10.0.0.1",
    "0.0.0.0",
    "1.2.3.04",
    "256.1.1.1",
    "1.2.3",
    "2001:db8::1",
    "2001:0DB8:0:0::1",
    "::ffff:1.2.3.4",
    "fe80::1%eth0",
    "",
)
FRACTIONS = ("", ".5", ".123", ".123456", ".123456789", ".1234567890")
SUFFIXES = ("Z", "+00:00", "+01:00", "")


@st.composite
def messages(draw) -> list[tuple[bytes | None, bytes | None, int]]:
    out = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["event"] * 8 + ["garbage", "packed"]))
        if kind == "garbage":
            value = draw(st.sampled_from([b"", b"{", b"[]", b"null", b'{"a":1}', None]))
            out.append((None, value, draw(st.integers(0, 1))))
            continue
        n = draw(st.integers(2, 4)) if kind == "packed" else 1
        docs = [draw(event_docs()) for _ in range(n)]
        lines = [draw(spellings(d)) if draw(st.booleans()) else orjson.dumps(d) for d in docs]
        if kind == "packed" and draw(st.booleans()):
            lines.insert(1, b"not json")
        acct = docs[0].get("account_id")
        key = acct.encode() if isinstance(acct, str) else None
        out.append((key, b"\n".join(lines), draw(st.integers(0, 1))))
    return out


@st.composite
def event_docs(draw) -> dict:
    minute = draw(st.sampled_from([-3, 0, 1, 2, 5, 6, 12, 40]))
    second = draw(st.sampled_from([0, 1, 59]))
    ts = BASE + minute * 60 + second
    head = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    doc = {
        "event_id": f"e{draw(st.integers(0, 30))}",
        "ts": head + draw(st.sampled_from(FRACTIONS)) + draw(st.sampled_from(SUFFIXES)),
        "account_id": draw(st.sampled_from(["a1", "a2", "a3"])),
        "api_key_id": draw(st.sampled_from(["k1", "k2", ""])),
        "ip": draw(st.sampled_from(IPS)),
        "user_agent": draw(st.sampled_from(["cli/1", "sdk/2", "", "sdk/\u00e9"])),
        "endpoint": "/v1/chat",
        "model": draw(st.sampled_from(["m1", "m2"])),
        "prompt_tokens": draw(st.sampled_from([10, 0, 3.0, -1, 100_000_001, True])),
        "completion_tokens": draw(st.integers(0, 5000)),
        "status": draw(st.sampled_from([200, 429, 500, 99, 200.0])),
        "latency_ms": draw(st.sampled_from([12, 12.5, -1, 86_400_001, "12"])),
    }
    for name, choices in (
        ("org_id", ["o1", None, 5]),
        ("prompt_fingerprint", ["t1", "t2", None, 7]),
        ("request_bytes", [100, None, -5, 1.0]),
        ("response_bytes", [100, None]),
        ("extra", ["x"]),
    ):
        if draw(st.booleans()):
            doc[name] = draw(st.sampled_from(choices))
    if draw(st.integers(0, 9)) == 0:
        del doc[draw(st.sampled_from(sorted(doc)))]
    if draw(st.integers(0, 19)) == 0:
        doc["ts"] = datetime.fromtimestamp(ts + 10 * 86_400, UTC).isoformat()  # far ahead
    return doc


_WS = st.sampled_from(["", "", "", " ", "  ", "\t", "\r", " \r\n "])


def _escaped(text: str, i: int) -> str:
    """``text`` as a JSON string with its ``i``-th character as a \\u escape."""
    body = orjson.dumps(text).decode()[1:-1]
    if not body:
        return '""'
    i %= len(text)
    if body != text:  # already escaped somewhere: keep orjson's spelling
        return f'"{body}"'
    return f'"{text[:i]}\\u{ord(text[i]):04x}{text[i + 1 :]}"'


@st.composite
def spellings(draw, doc: dict) -> bytes:
    """``doc`` as JSON in the spellings producers use besides orjson's: whitespace
    between tokens, keys in another order, \\u escapes, a repeated key (the last wins),
    integers written as decimals or exponents, leading zeros (not JSON), extra fields of
    every JSON type."""

    def number(v: int | float) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        choices = [orjson.dumps(v).decode()]
        if isinstance(v, int):
            choices += [f"{v}.0", f"{v}e0", f"0{v}", "-0" if v == 0 else str(v)]
        else:
            choices += [f"{v!r}0", f"{v:e}"]
        return draw(st.sampled_from(choices))

    def value(v: object) -> str:
        if isinstance(v, str):
            if v and draw(st.integers(0, 4)) == 0:
                return _escaped(v, draw(st.integers(0, 200)))
            return orjson.dumps(v).decode()
        if isinstance(v, int | float):
            return number(v)
        return orjson.dumps(v).decode()

    items = list(doc.items())
    if draw(st.booleans()):
        items = draw(st.permutations(items))
    if items and draw(st.integers(0, 5)) == 0:  # a repeated key: orjson keeps the last
        k, v = draw(st.sampled_from(items))
        items.append((k, draw(st.sampled_from([v, "x", 0, None]))))
    if draw(st.integers(0, 4)) == 0:
        extras = [{"a": [1, {"b": None}]}, [], True, False, None, 1.5, "\u00e9"]
        extra = draw(st.sampled_from(extras))
        items.insert(draw(st.integers(0, len(items))), ("extra2", extra))
    parts = []
    for k, v in items:
        key = _escaped(k, draw(st.integers(0, 30))) if draw(st.integers(0, 9)) == 0 else f'"{k}"'
        parts.append(f"{key}{draw(_WS)}:{draw(_WS)}{value(v)}")
    sep = draw(_WS) + "," + draw(_WS)
    text = draw(_WS) + "{" + draw(_WS) + sep.join(parts) + draw(_WS) + "}" + draw(_WS)
    return text.encode()


@settings(max_examples=400, deadline=None)
@given(event_docs().flatmap(lambda d: st.tuples(st.just(d), spellings(d))))
def test_the_scanner_reads_what_orjson_reads(pair) -> None:
    """Whatever the scanner accepts is an event that orjson decodes to the same field values
    and that the codec's fast check (codec._fast_request, which the C path mirrors)
    accepts, the address aside (event() checks it after the scan). orjson's own spelling
    of such an event with ASCII strings is always accepted (else every event would pay for
    orjson and nothing would say so)."""
    doc, raw = pair
    for text in (raw, orjson.dumps(doc)):
        if text.strip() and b"\n" not in text.strip():
            decode_request(text)  # fills the timestamp cache the C path reads
        got = _hot.scan(text)
        try:
            decoded = orjson.loads(text)
        except orjson.JSONDecodeError:
            assert got is None
            continue
        event = _fast_request(decoded) if isinstance(decoded, dict) else None
        if got is None:
            canonical = text == orjson.dumps(doc) and text.isascii()
            assert not (canonical and isinstance(event, RequestEvent)), text
            continue
        names = ("event_id", "account_id", "api_key_id", "user_agent", "endpoint", "model",
                 "ip", "ts", "prompt_tokens", "completion_tokens", "status")  # fmt: skip
        assert got[:8] + got[9:12] == tuple(decoded[n] for n in names)
        assert got[12] == decoded.get("prompt_fingerprint")
        if normalize_ip(decoded["ip"]) is None:
            continue  # the address is event()'s to check (it takes the Python path)
        assert isinstance(event, RequestEvent), text
        assert got[8] == event.ts


def test_encoded_events_are_scanned() -> None:
    """Every event the codec writes (the simulator's traffic) takes the scanner."""
    sim = Simulation(seed=3, accounts=100, duration=1800, rate=6.0)
    n = 0
    for ev in sim.events():
        raw = encode_request(ev)
        decode_request(raw)
        assert _hot.scan(raw) is not None, raw
        n += 1
    assert n > 1000


def test_a_string_is_read_up_to_its_first_special_byte() -> None:
    """The scanner reads a string eight bytes at a time and stops at the first byte that
    is not printable ASCII, a quote or a backslash. At every offset of strings shorter and
    longer than a word, first in the message and last in it (where fewer than eight bytes
    remain), a byte is taken as part of a plain string exactly when it is printable ASCII
    other than a quote or a backslash: anything else leaves the event to orjson (or it is
    not JSON at all)."""
    base = _event(1, "a1", 0.0)
    decode_request(orjson.dumps(base))  # fills the timestamp cache the C path reads
    rest = orjson.dumps({k: v for k, v in base.items() if k != "user_agent"})
    checked = 0
    for length in (1, 7, 8, 9, 15, 16, 17, 24):
        for at in range(length):
            for b in range(256):
                text = bytearray(b"u" * length)
                text[at] = b
                field = b'"user_agent":"' + bytes(text) + b'"'
                plain = 0x20 <= b <= 0x7E and b not in b'"\\'
                for raw in (b"{" + field + b"," + rest[1:], rest[:-1] + b"," + field + b"}"):
                    got = _hot.scan(raw)
                    assert (got is not None) == plain, (raw, b)
                    assert got is None or got[3] == text.decode()
                    checked += 1
    assert checked == 2 * 256 * (1 + 7 + 8 + 9 + 15 + 16 + 17 + 24)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_generated_messages_are_identical(network: NetworkEnricher, msgs) -> None:
    run_both(network, msgs)


def _event(i: int, account: str, offset: float, ip: str = "203.0.113.7", fp=None) -> dict:
    from pipeline.codec import format_ts

    doc = {
        "event_id": f"e{i}",
        "ts": format_ts(BASE + offset),
        "account_id": account,
        "api_key_id": "k1",
        "ip": ip,
        "user_agent": "cli/1",
        "endpoint": "/v1/chat",
        "model": "m1",
        "prompt_tokens": 10,
        "completion_tokens": 500,
        "status": 200,
        "latency_ms": 100,
    }
    if fp is not None:
        doc["prompt_fingerprint"] = fp
    return doc


@st.composite
def range_tables(draw):
    """Sorted, non-overlapping ranges (single addresses among them) in an array of
    typecode I, L or Q, and values to look up: every edge, its neighbours, and any int."""
    code = draw(st.sampled_from("ILQ"))
    top = (1 << 8 * array(code).itemsize) - 1
    bounds = sorted(set(draw(st.lists(st.integers(0, top), max_size=40))))
    starts, ends = [], []
    for lo, hi in zip(bounds[0::2], bounds[1::2], strict=False):
        starts.append(lo)
        ends.append(lo if draw(st.booleans()) else hi)
    edges = [b + d for b in starts + ends for d in (-1, 0, 1)]
    values = edges + draw(st.lists(st.integers(-2, 1 << 66), max_size=10))
    return array(code, starts), array(code, ends), values


@settings(max_examples=300)
@given(range_tables())
def test_a_range_is_found_as_bisect_finds_it(table) -> None:
    """The network lookups' range search (_hot.range_find) against its Python reference."""
    from pipeline.enrich.ipdata import range_find_py

    starts, ends, values = table
    for v in values:
        assert _hot.range_find(starts, ends, v) == range_find_py(starts, ends, v), v


def test_the_range_search_refuses_what_it_cannot_read() -> None:
    import pytest

    with pytest.raises(TypeError, match="typecode"):
        _hot.range_find(array("i", [1]), array("I", [2]), 1)  # signed
    with pytest.raises(TypeError, match="typecode"):
        _hot.range_find([1], array("I", [2]), 1)  # a list: bisect it in Python
    with pytest.raises(ValueError, match="differ in length"):
        _hot.range_find(array("I", [1, 5]), array("I", [2]), 1)
    with pytest.raises(TypeError, match="an int"):
        _hot.range_find(array("I", [1]), array("I", [2]), 1.0)
