"""Event-time windows: every view's counts equal a brute-force count over the same events."""

from __future__ import annotations

import itertools
import pickle
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.features import windows as w
from pipeline.features.windows import (
    IDX,
    LONG,
    RECENT_IDS,
    SHORT,
    AccountState,
    K,
    WindowStore,
    fp_key,
    fp_label,
)
from pipeline.records import Enriched, NetworkInfo, RequestEvent

T0 = 1_793_606_400.0  # an hour boundary

_event = st.tuples(
    st.floats(min_value=0.0, max_value=7_300.0),  # seconds after T0 (two hours)
    st.sampled_from(["a", "b", "c"]),  # account
    st.integers(0, 5),  # address
    st.integers(0, 2),  # key
    st.sampled_from([None, "t1", "t2", "t3"]),  # prompt fingerprint
)


_ids = itertools.count()


def _rec(
    ts: float, acct: str, ip: int, key: int, fp: str | None, event_id: str | None = None
) -> Enriched:
    """One event; its id is unique unless given (a redelivery)."""
    event_id = event_id or f"u{next(_ids)}"
    addr = f"198.51.{ip % 2}.{ip}"
    ev = RequestEvent(
        event_id, ts, acct, f"k{key}", addr, "cli", "/v1", "m", 10, 100, 200, 1.0, None, fp
    )
    return Enriched(ev, None, NetworkInfo("hosting", prefix=f"198.51.{ip % 2}.0/24"))


def _run(events: list[tuple], grace: float = 0.0) -> list[tuple[int, object]]:
    ws = WindowStore(60, 5, grace_seconds=grace, min_short=1, min_long=1)
    out = []
    for i, e in enumerate(events):
        assert ws.add(_rec(*e, event_id=f"e{i}"))
        for index, views in ws.advance():
            out.extend((index, v) for v in views)
    # a far-future event closes everything still open
    ws.add(_rec(T0 + 100_000, "z", 0, 0, None))
    for index, views in ws.advance():
        out.extend((index, v) for v in views if v.account_id != "z")
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(_event, min_size=1, max_size=120))
def test_views_match_a_brute_force_count(raw: list[tuple]) -> None:
    events = sorted(((T0 + dt, a, ip, k, fp) for dt, a, ip, k, fp in raw), key=lambda e: e[0])
    views = _run(events)
    assert views, "every account active in a bucket gets at least an hourly view"
    for index, view in views:
        span = 5 if view.kind == SHORT else 60
        lo, hi = index - span, index
        mine = [e for e in events if e[1] == view.account_id and lo < int(e[0] // 60) <= hi]
        assert view.counts["requests"] == len(mine)
        assert view.counts["distinct_ips"] == len({e[2] for e in mine})
        assert view.counts["distinct_api_keys"] == len({e[3] for e in mine})
        assert view.counts["distinct_networks"] == len({e[2] % 2 for e in mine})
        assert view.first_ts == min(e[0] for e in mine)
        assert view.last_ts == max(e[0] for e in mine)
        if view.kind == LONG:
            assert (index + 1) % 60 == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(_event, min_size=1, max_size=80), st.sampled_from([0.0, 10.0, 45.0]))
def test_every_event_is_counted_once_per_hour_even_out_of_order(raw: list, grace: float) -> None:
    """Late events are folded into the earliest open bucket, never dropped; with a grace
    period an account has two open buckets and events alternate between them."""
    events = [(T0 + dt, a, ip, k, fp) for dt, a, ip, k, fp in raw]  # arbitrary order
    hourly = [v for _, v in _run(events, grace) if v.kind == LONG]
    assert sum(v.counts["requests"] for v in hourly) == len(events)


def test_alternating_between_two_open_buckets_registers_each_once() -> None:
    """Within the grace period, events of the previous minute keep arriving after the new
    minute began; each (account, bucket) must close exactly once."""
    ws = WindowStore(60, 5, grace_seconds=30.0, min_short=1, min_long=1)
    for ts in (T0 + 50, T0 + 61, T0 + 55, T0 + 62, T0 + 58, T0 + 95):
        ws.add(_rec(ts, "a", 1, 0, None))
    closed = [(i, v.counts["requests"]) for i, vs in ws.advance() for v in vs]
    assert closed == [(int(T0 // 60), 3)]


def test_fingerprints_repeated_within_the_view_are_templates() -> None:
    ws = WindowStore(60, 5, grace_seconds=0.0)
    for i in range(12):
        ws.add(_rec(T0 + 240 + i, "a", 1, 0, "tmpl" if i % 2 else f"one-{i}"))
    ws.add(_rec(T0 + 300, "a", 1, 0, None))
    ((_, (view,)),) = ws.advance()
    assert view.fingerprints == {fp_label(fp_key("tmpl"))}
    assert view.values["template_reuse"] == 5 / 12  # 6 uses of the template, 5 of them repeats


def test_a_redelivered_event_id_is_refused_and_not_counted() -> None:
    ws = WindowStore(60, 5, grace_seconds=0.0, min_short=1, min_long=1)
    assert ws.add(_rec(T0, "a", 0, 0, None, "e0"))
    assert not ws.add(_rec(T0 + 1, "a", 0, 0, None, "e0"))  # a producer retry
    assert ws.add(_rec(T0 + 1, "b", 0, 0, None, "e0"))  # ids are per account
    for i in range(1, RECENT_IDS + 1):
        assert ws.add(_rec(T0 + 1 + i, "a", 0, 0, None, f"e{i}"))
    assert ws.add(_rec(T0 + 20, "a", 0, 0, None, "e0"))  # beyond the last RECENT_IDS
    ws.add(_rec(T0 + 1000, "z", 0, 0, None, "z"))
    views = [v for _, vs in ws.advance() for v in vs if v.account_id == "a"]
    first = next(v for v in views if v.kind == SHORT)  # the bucket all of them fell in
    assert first.counts["requests"] == RECENT_IDS + 2


def test_each_account_gets_its_view_every_five_minutes_at_a_minute_of_its_own() -> None:
    """Steady accounts are viewed once per 5 minutes each, spread over the minutes (a
    partition never scores all its accounts at once), at the same minutes in every run."""
    from array import array

    ws = WindowStore(60, 5, grace_seconds=0.0, min_short=1, min_long=10**9)
    names = [f"acct-{i}" for i in range(200)]
    per_minute: dict[int, list[str]] = {}
    for minute in range(12):
        for i, name in enumerate(names):
            assert ws.add(_rec(T0 + minute * 60 + i * 0.1, name, 0, 0, None))
            st_ = ws.accounts[name]
            if st_.stats_short is None:  # a learned history: no minute is "hot"
                st_.stats_short = array("d", [100.0, 0.0, 5.0, 12.0, 0.0, 0.0])
        for index, views in ws.advance():
            per_minute[index] = [v.account_id for v in views if v.kind == SHORT]
    full = sorted(per_minute)[5:10]  # five whole minutes after the first view period
    counts = [len(per_minute[i]) for i in full]
    assert all(20 <= c <= 60 for c in counts), counts
    assert sorted(a for i in full for a in per_minute[i]) == sorted(names)


_count = st.integers(0, 400).map(float)
_gap = st.floats(min_value=0.0, max_value=1e7, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(1, 9), st.integers(0, 12)), max_size=40),
    st.lists(st.tuples(st.integers(1, 50), st.integers(0, 12), st.booleans()), max_size=20),
    st.fixed_dictionaries(
        {
            "counters": st.lists(_count, min_size=12, max_size=12),
            "gaps": st.sampled_from([0.0, 1.0, 2.0, 7.0]),
            "gsum": _gap,
            "gsq": _gap,
            "first": st.floats(min_value=0.0, max_value=2e9, allow_nan=False),
            "minutes": st.sampled_from([1, 5, 60]),
            "lo": st.integers(-2, 10),
        }
    ),
)
def test_views_in_c_are_make_views(seen: list, fps: list, b: dict) -> None:
    """``_hot.view`` (what a native store builds) against make_view, its Python reference:
    every field, floats to the bit, dict order included."""
    from array import array

    from pipeline import _hot
    from pipeline.features import windows as w
    from pipeline.features.table import packed, packed_set, pair_set, pairs

    state = w.AccountState("acct-v")
    table = pairs(head=w.HEAD)
    for dim, value, last in seen:  # a value of dimension ``dim`` last seen in bucket ``last``
        table = pair_set(table, w.seen_key(dim, f"v{value}"), w._stamp(None, last, dim))
    state.seen = table
    if fps:
        t = packed()
        for key, last, repeated in fps:
            t = packed_set(t, key, last << 1 | repeated)
        state.fps = t
    counters = array("d", [0.0] * w.K)
    slots = [w.REQ, w.PT, w.CT, w.ERR, w.THR, w.RISKY, w.FPD, w.REP, w.NNET, w.NAGENT, w.NEWM]
    for slot, value in zip(slots, b["counters"], strict=False):
        counters[slot] = value
    counters[w.REQ] += 1.0  # views have requests
    counters[w.GAPS], counters[w.GSUM], counters[w.GSQ] = b["gaps"], b["gsum"], b["gsq"]
    counters[w.FIRST], counters[w.LAST] = b["first"], b["first"] + 59.5
    end = 600.0 + 60.0 * b["minutes"]
    args = (SHORT, state, 600.0, end, counters, b["lo"], 12, b["minutes"])
    py, c = w.make_view(*args), _hot.view(*args)

    def fields(v: w.View) -> list:
        return [
            (name, repr(getattr(v, name)) if name != "state" else id(v.state))
            for name in w.View.__dataclass_fields__
        ]

    assert type(c) is w.View
    assert fields(c) == fields(py)
    assert list(c.values.items()) == list(py.values.items())  # same order


def _v3_fixture_events(ws: WindowStore) -> None:
    """The events that made tests/unit/data/account_state_v3.pickle (with the version-3
    code, whose buckets were arrays in the lists ``ring`` and ``open``): four closed
    buckets, then three open ones, the last opened below the one before it."""

    def add(n: int, ts: float, ip: str) -> None:
        ev = RequestEvent(
            f"e{n}", ts, "acct-1", "k", ip, "cli", "/v1", "m", 10, 500, 200, 1.0,
            prompt_fingerprint=f"fp{n % 3}",
        )  # fmt: skip
        ws.add(Enriched(ev, None, NetworkInfo("hosting", prefix=ip.rsplit(".", 1)[0])))

    for i in range(40):
        add(i, 600.0 + 7 * i, f"198.51.100.{i % 3}")
        ws.advance()
    add(100, 965.0, "198.51.100.9")  # bucket 16
    add(101, 905.0, "198.51.100.9")  # bucket 15, opened after 16


#: the learned histories set on the version-5 fixture before it was pickled
_V5_STATS = (
    array("d", [7.0, 960.0, 2.5, 6.25, 0.125, 0.5]),
    array("d", [2.0, 3600.0, 4.0, 8.5, 0.25, 1.0 / 3]),
)


@pytest.mark.parametrize("version", [3, 4, 5, 6])
def test_an_older_account_state_loads_as_the_same_state(version: int) -> None:
    """A snapshot of state.VERSION 3 (buckets in lists), 4 (recent event ids, signed, in
    an array of their own), 5 (learned histories in arrays of their own) or 6 (buckets as
    K doubles each) unpickles into today's layout: the buckets as BUCKET records, the hour
    accumulator first, and the ids and the histories in the seen table's header. It equals
    the state that the same events give today, on either path. (Each fixture was pickled by
    its version's code from ``_v3_fixture_events``; version 4's ring has wrapped and holds
    negative ids; versions 5 and 6 had both histories set, as ``_V5_STATS``, and 7
    views.)"""
    from pathlib import Path

    from tests.unit.test_hot import _plain

    path = Path(__file__).parent / "data" / f"account_state_v{version}.pickle"
    old = pickle.loads(path.read_bytes())
    # the hour accumulator first (minus its 4 minutes), then the buckets in index order
    assert [b[IDX] for b in _buckets(old)] == [-4, 10, 11, 12, 13, 14, 15, 16]
    assert old.buckets.typecode == "B" and len(old.buckets) == 8 * w.BUCKET.size
    if version >= 5:
        assert (old.stats_short, old.stats_long) == _V5_STATS
        assert old.seen[1] == w.HEAD + 2 * w.STATS
    for native in (True, False):
        ws = WindowStore(60, 5, grace_seconds=30, native=native)
        _v3_fixture_events(ws)
        st = ws.accounts["acct-1"]
        if version >= 5:
            st.stats_short, st.stats_long = _V5_STATS
            st.views = 7
        assert _plain(st) == _plain(old)


def test_learned_histories_live_in_the_seen_header() -> None:
    """An account's seen table's header has room for its 5-minute history from the start
    (zero words: None), so that learning it, which nearly every active account does at its
    first view, does not move the table to a larger allocation; it grows by STATS words for
    the hourly one. A header without that room (an older snapshot's) grows on the first
    history. The slots and the rest of the header are untouched, a history reads back to
    the bit, and reading gives a copy."""
    acct = AccountState("a")
    assert acct.seen[1] == w.HEAD + w.STATS and acct.stats_short is None
    acct.seen = w.pairs(head=w.HEAD)  # as an older snapshot's account
    for i in range(20):
        acct.seen = w.pair_set(acct.seen, w.seen_key(w.D_IP, f"198.51.100.{i}"), i)
    acct.last_ts, acct.views = 123.5, 9
    before = dict(w.pair_items(acct.seen))
    assert acct.seen[1] == w.HEAD and acct.stats_short is None and acct.stats_long is None
    acct.stats_long = _V5_STATS[1]
    assert acct.seen[1] == w.HEAD + 2 * w.STATS
    assert acct.stats_short is None and acct.stats_long == _V5_STATS[1]
    acct.stats_short = _V5_STATS[0]
    assert (acct.stats_short, acct.stats_long) == _V5_STATS
    copy = acct.stats_short
    copy[0] = 99.0
    assert acct.stats_short == _V5_STATS[0]
    assert dict(w.pair_items(acct.seen)) == before
    assert (acct.last_ts, acct.views) == (123.5, 9)
    acct.stats_short = None
    assert acct.stats_short is None and acct.stats_long == _V5_STATS[1]
    fresh = AccountState("b")
    fresh.stats_short = _V5_STATS[0]
    assert fresh.seen[1] == w.HEAD + w.STATS and fresh.stats_short == _V5_STATS[0]
    with pytest.raises(ValueError, match="learned history"):
        acct.stats_short = array("d", [1.0])


def _buckets(st: AccountState) -> list[array]:
    b = w.unpack_buckets(st.buckets)
    return [b[i : i + K] for i in range(0, len(b), K)]


@pytest.mark.parametrize("native", [True, False])
def test_views_are_made_as_they_are_iterated(native: bool) -> None:
    """closing() makes a view only when it is asked for (a minute's views for every account
    at once were a worker's largest transient allocation), and gives the views advance()
    collects."""
    stores = [WindowStore(60, 5, grace_seconds=0, native=native) for _ in range(2)]
    for ws in stores:
        for a in range(40):  # 40 young accounts with a busy first minute: a view each
            for i in range(4):
                ws.add(_rec(T0 + i, f"a{a:02d}", 0, 0, None))
        ws.add(_rec(T0 + 61, "a00", 0, 0, None))  # the watermark passes the first minute
    lazy, eager = stores
    made = []
    maker = lazy._view_maker()
    lazy._view_maker = lambda: lambda *args: made.append(args[1]) or maker(*args)
    closing = lazy.closing()
    index, views = next(closing)
    assert made == []
    first = next(views)
    assert len(made) == 1 and first.account_id == "a00"
    got = [first, *views]
    assert len(made) == len(got) == 40
    assert next(closing, None) is None and lazy.closed_through == index
    assert [(index, [(v.account_id, v.counts) for v in got])] == [
        (i, [(v.account_id, v.counts) for v in vs]) for i, vs in eager.advance()
    ]


@pytest.mark.parametrize("native", [True, False])
def test_a_closed_bucket_is_kept_only_while_a_later_view_covers_it(native: bool) -> None:
    """Once bucket i's view is rolled up, bucket i - 4 is in no later view (i + 1's covers
    i - 3 .. i + 1): it is cut then, so a steady account holds four closed buckets between
    closes, and every 5-minute view still counts five minutes."""
    ws = WindowStore(60, 5, grace_seconds=0.0, min_short=1, min_long=10**9, native=native)
    views = []
    for minute in range(12):
        for i in range(3):  # three requests a minute
            assert ws.add(_rec(T0 + minute * 60 + i, "a", 0, 0, None))
        for _, vs in ws.advance():
            views.extend(v for v in vs if v.kind == SHORT)
        closed = ws.closed_through
        held = [b[IDX] for b in _buckets(ws.accounts["a"]) if 0 <= b[IDX] <= closed]
        assert held == [float(i) for i in range(max(int(T0) // 60, closed - 3), closed + 1)]
    assert views and all(v.counts["requests"] == 3 * v.values["active_minutes"] for v in views)
    assert [v.values["active_minutes"] for v in views][-5:] == [5.0] * 5
