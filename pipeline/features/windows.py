"""Per-account features in event-time windows, in a few hundred bytes per account.

Events fall into per-account buckets of ``bucket_seconds`` (one minute by default). A
bucket closes when the partition's watermark (the largest event time seen, minus the grace
period) passes its end. At that moment the account's closed buckets of the last
``view_buckets`` minutes are rolled into a short :class:`View` (the 5-minute view) every
``view_buckets`` buckets, at a phase of the account's own (:func:`view_phase`, so that a
partition scores a fifth of its accounts at each minute rather than all of them at every
fifth, which kept the pipeline busy for a second every five minutes and delayed the alerts
due then), and the bucket is added to the account's hour; when the watermark passes an
hour boundary, every account active in that hour gets a long view (the 1-hour view).
Scoring therefore happens
once per active account per bucket and per hour, never per request. Views with fewer than
``min_short`` (5-minute) or ``min_long`` (hourly) requests are not built at all: one or two
requests cannot be extraction at scale, and most accounts are that quiet most of the time.

Late events (older than the watermark allows) are folded into the account's earliest open
bucket: their volume still counts, their timestamp does not. That is the documented
late-event policy; nothing is discarded.

Layout, chosen for speed and memory (there is one :class:`AccountState` per account, so
every byte counts a hundred thousand times):

* a bucket is :data:`K` counters (no per-bucket sets or dicts), stored as an 84-byte
  :data:`BUCKET` record (32-bit counts), and all of an account's buckets are one flat
  ``array('B')`` of them: its hour accumulator when it has one (first; its
  ``IDX`` is minus its minutes, where a bucket's is its index, never negative), then the
  closed buckets of the short view and the open ones, in index order. A closed bucket
  stays where it is (closing bucket *i* only changes which side of *i* it is on), one
  that no later view covers is cut out when *i*'s view has been rolled up (so an account
  holds four closed buckets between closes, not five), and an account pays for one array
  header instead of two lists and an array per bucket;
* distinct values (API keys, addresses, networks, ASNs, countries, clients, models) live
  in **one** integer hash table per account (:mod:`pipeline.features.table`), keyed by
  the value's dimension and stable hash, holding the last bucket index the value was
  seen in, how long before that it was seen (so a bucket closing while the next is
  already open still counts exactly), its dimension and a ``known`` flag (the account's
  learned history uses it). Distinct counts for any window are a scan of that small
  table. No value string is kept at all;
* the account's scalar state is that table's header (:data:`HEAD` words), not objects of
  its own: its last :data:`RECENT_IDS` event ids (hashes, to recognise redeliveries), the
  time of its latest event, the hours of day it was active in and its view count, and,
  its 5-minute and, once learned, hourly histories (:data:`STATS` words each);
* prompt fingerprints live in a second, packed table (at most :data:`FP_CAP`, a 31-bit
  hash and the last bucket each), only to tell repeats (templates) from one-off prompts
  within the view;
* novelty (requests from networks or clients the account has never used) is counted per
  event from the ``known`` flag, so a view never needs per-value request counts.

Both tables are flat arrays of integers: an event touches a few adjacent cache lines of
its account instead of a dozen scattered objects, which is what sets the per-event cost
at a hundred thousand accounts.

Only counts and identifiers ever reach this module: no prompt or completion content.
"""

from __future__ import annotations

import itertools
import math
import struct
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from hashlib import blake2b as _blake2b
from operator import add
from zlib import crc32 as _crc32

from pipeline.features.table import (
    M61,
    PACK_KEY_MAX,
    packed,
    packed_get,
    packed_items,
    packed_rebuild,
    packed_set,
    pair_find,
    pair_items,
    pair_rebuild,
    pair_reheader,
    pair_set,
    pairs,
    value_hash,
)
from pipeline.records import RISKY_KINDS, Enriched

try:
    from pipeline import _hot
except ImportError:  # installed without a C compiler: _Tables does the close path's work
    _hot = None

SHORT, LONG = "5m", "1h"

# bucket counters (index 0 is the bucket index; for an hour accumulator, its minutes)
IDX, REQ, PT, CT, ERR, THR, RISKY, FPD, REP, NNET, NAGENT, GAPS, GSUM, GSQ, NEWM, FIRST, LAST = (
    range(17)
)
K = 17
_INF = float("inf")
_EMPTY = array("d", [0.0] * K)
_EMPTY[FIRST] = _INF
#: How an account stores a bucket: 84 bytes instead of K doubles' 136 (not 88: no padding,
#: so that six records, a steady account's hour, four closed buckets and the open one, fit
#: a 512-byte pymalloc block). The index and the
#: counts are 32-bit integers (the hour accumulator's index is minus its minutes), the gap
#: sums and the first and last times stay doubles, in the order of the counters above (C's
#: ``Bucket``, whose layout ``_hot.configure`` checks against this one). A count saturates
#: at 2**32 - 1: 71 million tokens a minute, sustained for an hour by one account, before
#: the hour accumulator reaches it. The Python path's arithmetic is on doubles as before
#: (_load, _store), C's event path adds to the record's fields (saturating): every sum is
#: exactly what it was.
BUCKET = struct.Struct("<i11I2dI2d")
_SIZE = BUCKET.size
_I32 = struct.Struct("<i")  # a record's first field: its IDX
_U32 = (1 << 32) - 1


def _bidx(raw: array, i: int) -> int:
    """The IDX of record ``i`` of stored buckets ``raw``."""
    return _I32.unpack_from(raw, i * _SIZE)[0]


def _load(raw: array, i: int) -> array:
    """Record ``i`` of stored buckets ``raw`` as K doubles."""
    return array("d", BUCKET.unpack_from(raw, i * _SIZE))


def _fields(b: array) -> tuple:
    """K doubles as BUCKET's fields (struct refuses a count past 32 bits: see _store)."""
    return (
        int(b[IDX]), *map(int, b[REQ:GSUM]), b[GSUM], b[GSQ], int(b[NEWM]), b[FIRST], b[LAST]
    )  # fmt: skip


def _saturated(b: array) -> array:
    out = array("d", b)
    for j in (*range(REQ, GSUM), NEWM):
        out[j] = min(out[j], _U32)
    return out


def _store(raw: array, i: int, b: array) -> None:
    """K doubles into record ``i`` of ``raw`` (a count saturates at 2**32 - 1)."""
    try:
        BUCKET.pack_into(raw, i * _SIZE, *_fields(b))
    except struct.error:  # a count past 32 bits (rare: see BUCKET)
        BUCKET.pack_into(raw, i * _SIZE, *_fields(_saturated(b)))


def _record(b: array) -> array:
    """K doubles as one stored record (``array('B')`` of BUCKET.size)."""
    out = array("B", bytes(_SIZE))
    _store(out, 0, b)
    return out


def unpack_buckets(raw: array) -> array:
    """An account's stored buckets (``AccountState.buckets``) as K doubles each.

    >>> b = array("d", _EMPTY)
    >>> b[IDX], b[REQ], b[GSUM] = 29_000_000, 3, 1.5
    >>> unpack_buckets(pack_buckets(b)) == b, len(pack_buckets(b)) == BUCKET.size
    (True, True)
    >>> b[CT] = 2.0**40  # saturates
    >>> unpack_buckets(pack_buckets(b))[CT] == 2**32 - 1
    True
    """
    flat = array("d")
    for i in range(len(raw) // _SIZE):
        flat.extend(_load(raw, i))
    return flat


def pack_buckets(flat: array) -> array:
    """K doubles per bucket as stored (``array('B')`` of BUCKET records, exactly sized)."""
    out = array("B", bytes(_SIZE * (len(flat) // K)))
    for i in range(len(flat) // K):
        _store(out, i, flat[i * K : (i + 1) * K])
    return out


# dimensions of the ``seen`` table, and its flags
D_KEY, D_IP, D_NET, D_ASN, D_COUNTRY, D_AGENT, D_MODEL = range(7)
KNOWN = 8
# seen value: last bucket << 32 | (last - previous bucket, saturated) << 4 | flags
_LAST, _BACK, _BACK_MAX = 32, 4, (1 << 28) - 1
KNOWN_CAP = 32  # networks / clients remembered as known per account
SEEN_CAP = 256  # beyond this, values not seen within the short view are forgotten early
FP_CAP = 64  # prompt fingerprints remembered per account (enough to see templates cycle)
NEW_MODEL_SECONDS = 86_400.0  # a model first seen less than a day ago is "new"
_GAP_MAX = 3_600.0  # gaps longer than an hour are absences, not pacing
RECENT_IDS = 8  # event ids remembered per account to recognise redelivered duplicates
# The header of an account's ``seen`` table (table.pairs' ``head``) holds the account's
# scalar state as words: an array of their own cost the event ids 144 bytes, and each
# slot 8 bytes plus, for a float or an int past 256, an object of 24-32 bytes.
_IDS_AT = 2  # the cursor of the ring of recent event ids
_IDS = 3  # the ring: RECENT_IDS event-id hashes
_LAST_TS = _IDS + RECENT_IDS  # the account's latest event time, as the bits of a float
_HOURS = _LAST_TS + 1  # mask_hour << 24 | hours_mask (AccountState.hours_mask)
_VIEWS = _HOURS + 1  # short views scored (AccountState.views)
HEAD = _VIEWS - 1  # header words of every account
# An account's learned histories (detect.account._learn_stats: n, last, two means, two
# variances), as the bits of STATS floats each, follow: a new account's header has room
# for the 5-minute one (zero words until learned: None), and grows to HEAD + 2 * STATS with
# the hourly one. Held in arrays of their own, each cost an 80-byte object and a 48-byte
# buffer besides its 48 bytes of data. The room is there from the start because nearly
# every active account learns a 5-minute history at its first view: growing the table
# then moved it to a larger allocation and left the smaller block free in a pool that
# other accounts' live tables held (110 B per account of free blocks at 100k accounts).
STATS = 6
_SHORT = _VIEWS + 1  # AccountState.stats_short
_LONG = _SHORT + STATS  # AccountState.stats_long
_ZEROS = array("Q", [0] * STATS)
_M64 = (1 << 64) - 1
_F64, _U64 = struct.Struct("<d"), struct.Struct("<Q")


def _float_bits(x: float) -> int:
    """A float as the word that holds it (its IEEE 754 bits; C copies them as they are)."""
    return _U64.unpack(_F64.pack(x))[0]


def _bits_float(w: int) -> float:
    return _F64.unpack(_U64.pack(w))[0]


def seen_key(dim: int, value: str | int) -> int:
    """The ``seen`` table's key of a value of dimension ``dim`` (an ASN is an int)."""
    h = value % M61 if type(value) is int else value_hash(value)
    return (dim + 1) << 61 | h


def fp_key(fingerprint: str) -> int:
    """The fingerprint table's key of a prompt fingerprint (31 bits, never 0)."""
    return value_hash(fingerprint) % PACK_KEY_MAX + 1


def fp_label(key: int) -> str:
    """How views name a fingerprint (campaign links): the hex of its table key.

    >>> fp_label(fp_key("tmpl")) == fp_label(fp_key("tmpl")) != fp_label(fp_key("tmpl2"))
    True
    """
    return f"{key:08x}"


def event_id_hash(event_id: str) -> int:
    """Unsigned 64-bit hash of an event id, stable across processes (snapshots carry it)."""
    return int.from_bytes(_blake2b(event_id.encode(), digest_size=8).digest(), "little")


def view_phase(account_id: str) -> int:
    """The account's stable offset (0..255) of its view boundaries: the same in every
    process and run (a CRC of the id, not ``hash``, which is salted per process).

    >>> view_phase("acct-1") == view_phase("acct-1")
    True
    """
    return _crc32(account_id.encode()) & 0xFF


class AccountState:
    """Everything the core keeps about one account of one partition.

    Window state (open buckets, the closed buckets of the short view, the hour
    accumulator, distinct values) and the account's learned history (``stats_short`` and
    ``stats_long``: fading mean/variance of its log volume per view kind, words of the
    ``seen`` header; ``drift``: its drift detector; the ``known`` flags in ``seen``), in
    one slotted object. ``seen`` and ``fps`` are integer tables of
    :mod:`pipeline.features.table`.
    """

    __slots__ = (
        "account_id",
        "buckets",
        "drift",
        "fps",
        "phase",
        "seen",
    )

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.phase = view_phase(account_id)  # see view_phase
        # K counters per bucket: the hour accumulator if any (IDX < 0: minus its minutes),
        # then in index order the closed buckets inside the short view (those at or below
        # the last closed index) and the open ones (usually one; two around a boundary)
        self.buckets = array("B")  # BUCKET records (unpack_buckets: K doubles each)
        # seen_key -> stamp (see _stamp), after the header (HEAD): the recent event ids,
        # last_ts, hours_mask and mask_hour, views; all zero (0.0 for last_ts); then room
        # for the 5-minute history (zero: none yet) and, once learned, the hourly one
        self.seen: array = pairs(head=HEAD + STATS)
        self.drift = None  # the detector's per-account drift model (created on demand)
        self.fps: array | None = None  # fp_key -> last bucket << 1 | repeated (packed)

    @property
    def last_ts(self) -> float:
        """The time of the account's latest event (its gaps are measured from it)."""
        return _bits_float(self.seen[_LAST_TS])

    @last_ts.setter
    def last_ts(self, ts: float) -> None:
        self.seen[_LAST_TS] = _float_bits(ts)

    @property
    def hours_mask(self) -> int:
        """The UTC hours of day the account was active in, over the last 24 hours."""
        return self.seen[_HOURS] & 0xFFFFFF

    @property
    def mask_hour(self) -> int:
        """The absolute hour of ``hours_mask``'s last update."""
        return self.seen[_HOURS] >> 24

    def set_hours(self, mask: int, hour: int) -> None:
        self.seen[_HOURS] = hour << 24 | mask

    @property
    def views(self) -> int:
        """Short views scored: the length of the account's learned history."""
        return self.seen[_VIEWS]

    @views.setter
    def views(self, n: int) -> None:
        self.seen[_VIEWS] = n

    @property
    def stats_short(self) -> array | None:
        """The account's learned 5-minute history (``array('d')`` of STATS: a copy, so
        write it back), or None before its first."""
        return self._stats(_SHORT)

    @stats_short.setter
    def stats_short(self, s: array | None) -> None:
        self._set_stats(_SHORT, s)

    @property
    def stats_long(self) -> array | None:
        """The account's learned hourly history, as ``stats_short``."""
        return self._stats(_LONG)

    @stats_long.setter
    def stats_long(self, s: array | None) -> None:
        self._set_stats(_LONG, s)

    def _holds(self, at: int) -> bool:
        """Does the header reach the history at ``at`` (_SHORT or _LONG)?"""
        return self.seen[1] >= at - 2 + STATS

    def _stats(self, at: int) -> array | None:
        if not self._holds(at) or not self.seen[at]:  # n == 0.0: never learned
            return None
        return array("d", self.seen[at : at + STATS].tobytes())

    def _set_stats(self, at: int, s: array | None) -> None:
        if s is None:
            if self._holds(at):
                self.seen[at : at + STATS] = _ZEROS
            return
        if len(s) != STATS or s.typecode != "d":
            raise ValueError(f"a learned history is array('d') of {STATS}, not {s!r}")
        if not self._holds(at):
            self.seen = pair_reheader(self.seen, at - 2 + STATS)
        self.seen[at : at + STATS] = array("Q", s.tobytes())

    def __setstate__(self, state: tuple[None, dict]) -> None:
        """Unpickle, also from older snapshots (``state.VERSION``): versions 3 and 4 held
        the recent event ids in an array of their own (``ids``, signed, and ``ids_at``)
        and ``last_ts``, ``hours_mask``, ``mask_hour`` and ``views`` in slots, and version
        3 held the buckets as arrays in lists: ``ring`` (closed) and ``open``, and
        ``cur``, and the hour accumulator apart (``hour``, its IDX the minutes); versions
        3 to 5 held the learned histories in arrays of their own (``stats_short`` and
        ``stats_long``, now in the header); versions 4 to 6 held the buckets as K doubles
        each (``array('d')``, now BUCKET records)."""
        slots = dict(state[1])
        stats = slots.pop("stats_short", None), slots.pop("stats_long", None)
        ids = slots.pop("ids", None)
        if ids is not None:  # the seen table had no header then (its second word was 0)
            old = slots["seen"]
            head = array("Q", [old[0], HEAD, slots.pop("ids_at", 0)])
            head.extend(h & _M64 for h in ids)
            head.append(_float_bits(slots.pop("last_ts", 0.0)))
            head.append(slots.pop("mask_hour", 0) << 24 | slots.pop("hours_mask", 0))
            head.append(slots.pop("views", 0))
            slots["seen"] = head + old[2:]
        ring, opened = slots.pop("ring", None), slots.pop("open", None)
        slots.pop("cur", None)
        hour = slots.pop("hour", None)
        if ring is not None:
            flat = array("d")
            if hour is not None:
                flat.extend(hour)
                flat[IDX] = -hour[IDX]
            for b in [*ring, *sorted(opened or (), key=_bucket_index)]:
                flat.extend(b)
            slots["buckets"] = flat
        if slots["buckets"].typecode == "d":
            slots["buckets"] = pack_buckets(slots["buckets"])
        for name, value in slots.items():
            setattr(self, name, value)
        if self.seen[1] < HEAD + STATS:  # room for the 5-minute history, as new ones
            self.seen = pair_reheader(self.seen, HEAD + STATS)
        for at, s in zip((_SHORT, _LONG), stats, strict=True):
            if s is not None:  # a snapshot of version 5 or older
                self._set_stats(at, s)

    def remember(self, nets: list[int], agents: list[int]) -> None:
        """Mark networks and clients (``seen`` keys) as known to the account's history
        (bounded: :data:`KNOWN_CAP` of each); in C where it is built (``_Tables.remember``
        is the reference)."""
        (_Tables if _hot is None else _hot).remember(self.seen, nets, agents)


@dataclass(slots=True)
class View:
    """One account's rolled-up activity over ``[start, end)``: the unit that is scored."""

    kind: str  # SHORT or LONG
    account_id: str
    start: float
    end: float
    first_ts: float
    last_ts: float
    values: dict[str, float]
    counts: dict[str, int]
    nets: list[int]  # distinct /24 or /48 networks seen in the view (``seen`` keys)
    agents: list[int]  # distinct user agents seen in the view (``seen`` keys)
    ips: list[int]  # distinct addresses seen in the view (``seen`` keys)
    fingerprints: set[str]  # prompt fingerprints repeated within the view (templates), as
    # hex of their 31-bit hashes
    state: AccountState | None = None


if _hot is not None:
    _hot.view_type(View)  # what _hot.view makes


def make_view(
    kind: str,
    st: AccountState,
    start: float,
    end: float,
    b: array,
    lo: int,
    hi: int,
    active_minutes: float,
) -> View:
    """Feature values of the counters ``b`` over ``[start, end)``; distinct values are
    those of ``st.seen`` seen in buckets ``lo + 1 .. hi``. The Python reference of
    ``_hot.view``, which a native store uses (tests/unit/test_windows.py compares them)."""
    distinct, nets, agents, ips = _Tables.scan_seen(st.seen, lo, hi)
    fps: set[str] = set()
    if b[REP] and st.fps is not None:
        fps = {fp_label(key) for key in _Tables.repeated_fps(st.fps, lo)}
    n = b[REQ]
    minutes = (end - start) / 60.0
    fpd = b[FPD]
    gaps = b[GAPS]
    if gaps >= 2:
        mean = b[GSUM] / gaps
        var = max(0.0, b[GSQ] / gaps - mean * mean)
        cv = math.sqrt(var) / mean if mean > 0 else 0.0
    else:
        cv = 1.0  # too few gaps to tell: neutral (a Poisson process has cv 1)
    values = {
        "requests_per_min": n / minutes,
        "prompt_tokens_per_min": b[PT] / minutes,
        "completion_tokens_per_min": b[CT] / minutes,
        "completion_tokens_per_request": b[CT] / n,
        "completion_prompt_ratio": b[CT] / (b[PT] + 1.0),
        "distinct_api_keys": float(distinct[D_KEY]),
        "distinct_ips": float(distinct[D_IP]),
        "distinct_networks": float(distinct[D_NET]),
        "distinct_asns": float(distinct[D_ASN]),
        "distinct_countries": float(distinct[D_COUNTRY]),
        "distinct_models": float(distinct[D_MODEL]),
        "risky_network_share": b[RISKY] / n,
        "error_rate": b[ERR] / n,
        "throttled_rate": b[THR] / n,
        "template_reuse": b[REP] / fpd if fpd else 0.0,
        "new_network_share": b[NNET] / n,
        "new_client_share": b[NAGENT] / n,
        "new_model_share": b[NEWM] / n,
        "interarrival_cv": cv,
        "active_minutes": float(active_minutes),
    }
    counts = {
        "requests": int(n),
        "prompt_tokens": int(b[PT]),
        "completion_tokens": int(b[CT]),
        "fingerprinted": int(fpd),
        "distinct_api_keys": distinct[D_KEY],
        "distinct_ips": distinct[D_IP],
        "distinct_networks": distinct[D_NET],
        "risky_network_requests": int(b[RISKY]),
    }
    return View(
        kind,
        st.account_id,
        start,
        end,
        b[FIRST],
        b[LAST],
        values,
        counts,
        nets,
        agents,
        ips,
        fps,
        st,
    )


class WindowStore:
    """Event-time windows of every account of one partition.

    ``add`` places an event; ``advance`` returns the views that the watermark has closed,
    grouped by bucket index, in (index, kind, account id) order, so the output is a pure
    function of the partition's event sequence.

    >>> from pipeline.records import Enriched, NetworkInfo, RequestEvent
    >>> ws = WindowStore(60, 5, grace_seconds=0)
    >>> def ev(n, ts, ip="198.51.100.7"):
    ...     e = RequestEvent(f"e{n}", ts, "acct-1", "k", ip, "cli", "/v1", "m", 10, 500, 200, 1.0)
    ...     return Enriched(e, None, NetworkInfo("hosting", prefix=ip.rsplit(".", 1)[0]))
    >>> [ws.add(ev(i, 600.0 + 10 * i, ip=f"198.51.100.{i % 2}")) for i in range(6)]
    [True, True, True, True, True, True]
    >>> ws.add(ev(0, 655.0))  # event e0 again: a duplicate, not counted
    False
    >>> ws.add(ev(6, 660.0))  # the watermark passes minute 10: its bucket closes
    True
    >>> [(i, [(v.kind, v.counts["requests"], v.counts["distinct_ips"]) for v in vs])
    ...  for i, vs in ws.advance()]
    [(10, [('5m', 6, 2)])]
    """

    def __init__(
        self,
        bucket_seconds: int,
        view_buckets: int,
        grace_seconds: float,
        hour_buckets: int | None = None,
        min_short: int = 3,
        min_long: int = 10,
        hot_factor: float = 3.0,
        young_views: int = 5,
        native: bool = True,
    ) -> None:
        """``native``: the close path's table operations in C when built (False: always
        the Python reference, which the tests compare it with)."""
        self.native = native
        self.bucket_seconds = bucket_seconds
        self._hot_log = math.log(hot_factor)
        self.young_views = young_views
        self.view_buckets = view_buckets
        self.hour_buckets = hour_buckets or max(1, 3600 // bucket_seconds)
        self.grace = grace_seconds
        self.min_short = min_short  # fewer requests than this: no view (nothing to score)
        self.min_long = min_long
        self.accounts: dict[str, AccountState] = {}
        self._active: dict[int, list[AccountState]] = {}  # bucket index -> accounts there
        self._in_hour: list[AccountState] = []  # accounts with activity in the current hour
        self._expiry: dict[int, list[AccountState]] = {}  # bucket -> short views ending
        self.closed_through: int | None = None  # highest closed bucket index
        self.max_ts: float | None = None
        self.first_ts = 0.0  # the partition's first event time
        self.late_events = 0
        self.model_first_seen: dict[str, float] = {}

    def add(self, rec: Enriched) -> bool:
        """Count one event into its account's bucket: counters and the ``seen`` dict.

        Returns False, counting nothing, for a duplicate: an event whose ``event_id`` is
        one of the account's last RECENT_IDS (a producer retry or a redelivery).
        """
        ev = rec.event
        acct_id = ev.account_id
        st = self.accounts.get(acct_id)
        if st is None:
            st = self.accounts[acct_id] = AccountState(acct_id)
        h = event_id_hash(ev.event_id)
        seen = st.seen
        if h in seen[_IDS : _IDS + RECENT_IDS]:
            return False
        at = seen[_IDS_AT]
        seen[_IDS + at] = h
        seen[_IDS_AT] = (at + 1) % RECENT_IDS
        ts = ev.ts
        index = int(ts // self.bucket_seconds)
        if self.max_ts is None:
            self.first_ts = self.max_ts = ts
            self.closed_through = index - 1
        elif ts > self.max_ts:
            self.max_ts = ts
        closed = self.closed_through
        if closed is not None and index <= closed:
            index = closed + 1  # late: fold into the earliest open bucket
            self.late_events += 1
        # the open bucket of ``index``: open buckets are the last ones, in index order, and
        # every closed one is below ``index``
        raw = st.buckets
        at = len(raw) // _SIZE
        while at and _bidx(raw, at - 1) > index:
            at -= 1
        if at and _bidx(raw, at - 1) == index:
            at -= 1
        else:
            new = array("d", _EMPTY)
            new[IDX] = index
            off = at * _SIZE  # exactly sized: see _hot's splice_buckets
            st.buckets = raw = raw[:off] + _record(new) + raw[off:]
            active = self._active.get(index)
            if active is None:
                self._active[index] = [st]
            else:
                active.append(st)
        b = _load(raw, at)  # counted on doubles, stored back once counted
        b[REQ] += 1
        b[PT] += ev.prompt_tokens
        b[CT] += ev.completion_tokens
        status = ev.status
        if status >= 400:
            if status == 429:
                b[THR] += 1
            else:
                b[ERR] += 1
        net = rec.network
        if net.kind in RISKY_KINDS:
            b[RISKY] += 1
        if ts < b[FIRST]:
            b[FIRST] = ts
        if ts > b[LAST]:
            b[LAST] = ts
        last = st.last_ts
        if ts > last:
            gap = ts - last
            if gap < _GAP_MAX:
                b[GAPS] += 1
                b[GSUM] += gap
                b[GSQ] += gap * gap
            st.last_ts = ts
        # distinct values: last bucket seen, dimension, flags kept
        _see(st, D_KEY, ev.api_key_id, index)
        _see(st, D_IP, ev.ip, index)
        if not _see(st, D_NET, net.prefix or ev.ip + "/", index) & KNOWN:
            b[NNET] += 1
        if net.asn is not None:
            _see(st, D_ASN, net.asn, index)
        if net.country is not None:
            _see(st, D_COUNTRY, net.country, index)
        if not _see(st, D_AGENT, ev.user_agent, index) & KNOWN:
            b[NAGENT] += 1
        model = ev.model
        _see(st, D_MODEL, model, index)
        first = self.model_first_seen.get(model)
        if first is None:
            first = self.model_first_seen[model] = ts
        if ts - first < NEW_MODEL_SECONDS and first - self.first_ts >= 3600.0:
            b[NEWM] += 1  # a model that appeared (after the first hour) less than a day ago
        fp = ev.prompt_fingerprint
        if fp is not None:
            b[FPD] += 1
            key = fp_key(fp)
            fps = st.fps
            horizon = index - self.view_buckets
            if fps is None:
                st.fps = packed_set(packed(), key, index << 1)
            else:
                v = packed_get(fps, key)
                if v is not None and (v >> 1) > horizon:
                    b[REP] += 1
                    st.fps = packed_set(fps, key, index << 1 | 1)
                elif v is not None or fps[0] < FP_CAP:
                    st.fps = packed_set(fps, key, index << 1)
                elif (fresh := _Tables.expire_fps(fps, horizon)) is not None:
                    st.fps = packed_set(fresh, key, index << 1)
                # else: beyond the cap within the view: counted, not remembered
        _store(raw, at, b)
        return True

    def watermark_index(self) -> int | None:
        """The highest bucket index the watermark has closed (None before any event)."""
        if self.max_ts is None:
            return None
        return int((self.max_ts - self.grace) // self.bucket_seconds) - 1

    def due(self) -> bool:
        """Has the watermark passed a bucket that is still open (would advance close one)?

        Not merely "moved": during a partition's first ``grace`` seconds the watermark is
        still behind the bucket before the first event's, which is already closed.
        """
        target, closed = self.watermark_index(), self.closed_through
        return target is not None and closed is not None and target > closed

    def advance(self) -> list[tuple[int, list[View]]]:
        """Close every bucket the watermark has passed; views grouped per closed bucket
        (:meth:`closing`, collected)."""
        return [(index, list(views)) for index, views in self.closing()]

    def closing(self) -> Iterator[tuple[int, Iterator[View]]]:
        """Close every bucket the watermark has passed, one index at a time, and make each
        index's views as they are iterated.

        Contract: iterate each index's views before asking for the next index (as a loop
        over both does). The next index is closed only then, and the store is up to date
        once this is exhausted. Why: a minute's views are for up to every active account
        of the partition (every one at an hour's end), and making them all at once, a
        dict of values each, was the largest transient allocation of a worker; the
        allocator kept that peak, which cost 137 B of resident memory per account at 100k
        accounts (`bench live`'s memory phase). Made lazily, a view is scored and freed
        before the next is made. The views are the same either way: making one reads only
        its own account, and scoring one changes only its own account.
        """
        if not self.due():
            return
        target = self.watermark_index()
        hb = self.hour_buckets
        first = self.closed_through + 1
        indices = {i for i in self._active if i <= target}
        # hour boundaries crossed, even where no account was active in that very bucket
        boundary = first + (-(first + 1)) % hb
        indices.update(range(boundary, target + 1, hb))
        for index in sorted(indices):
            states = self._active.pop(index, [])
            states.sort(key=_by_id)
            if self.native and _hot is not None:
                closed = _hot.close(self, states, index)
            else:
                closed = [c for st in states if (c := self._close(st, index)) is not None]
            # accounts quiet for a whole view: free their buckets. None of them has a view
            # at ``index`` (that needs a bucket closed at ``index``, which keeps it).
            for st in self._expiry.pop(index, ()):
                raw = st.buckets
                end, lo = _ring_end(raw, index), _hour_end(raw)
                if end > lo and _bidx(raw, end - 1) <= index - self.view_buckets:
                    st.buckets = raw[: lo * _SIZE] + raw[end * _SIZE :]
                    st.fps = None
            views = self._short_views(closed, index)
            if (index + 1) % hb == 0:
                views = itertools.chain(views, self._close_hour(index))
            yield index, views
        self.closed_through = target

    def _ops(self) -> type[_Tables]:
        return _hot if self.native and _hot is not None else _Tables  # type: ignore[return-value]

    def _view_maker(self) -> Callable[..., View]:
        """make_view, or ``_hot.view`` (its C twin) when the store is native."""
        return make_view if self._ops() is _Tables else _hot.view

    def _short_views(
        self, closed: list[tuple[AccountState, array, int]], index: int
    ) -> Iterator[View]:
        """The short views of accounts whose bucket ``index`` closed: ``closed`` holds, per
        account due a view, its rolled-up counters and how many buckets they cover (from
        :meth:`_close` or its C twin ``_hot.close``)."""
        end = (index + 1) * self.bucket_seconds
        start = float(end - self.view_buckets * self.bucket_seconds)
        end = float(end)
        horizon = index - self.view_buckets
        view = self._view_maker()
        return (view(SHORT, st, start, end, roll, horizon, index, n) for st, roll, n in closed)

    def _close(self, st: AccountState, index: int) -> tuple[AccountState, array, int] | None:
        """Close the account's bucket ``index``: fold it into the hour and the short view's
        ring, forget what no later view covers; if a view is due, (account, its rolled-up
        counters, buckets rolled). The Python reference of ``_hot.close``
        (tests/unit/test_hot.py compares them)."""
        raw = st.buckets
        at = _ring_end(raw, index - 1)  # the first open bucket: ``index``'s (closes go in order)
        if at == len(raw) // _SIZE or _bidx(raw, at) != index:
            # every (account, bucket) is registered once, when the bucket is created
            raise AssertionError(f"no open bucket {index} for {st.account_id}")
        o = _load(raw, at)
        if _hour_end(raw):  # fold the bucket into the hour: counters summed, first/last kept
            h = _load(raw, 0)
            first, last, minutes = min(h[FIRST], o[FIRST]), max(h[LAST], o[LAST]), 1 - h[IDX]
            h = array("d", map(add, h, o))
            h[IDX], h[FIRST], h[LAST] = -minutes, first, last
            _store(raw, 0, h)
        else:  # the account's first bucket of this hour starts its accumulator
            h = array("d", o)
            h[IDX] = -1.0
            raw = _record(h) + raw
            at += 1
            self._in_hour.append(st)
        lo = 1  # where the closed buckets start, after the hour
        expiry = self._expiry.get(index + self.view_buckets)
        if expiry is None:
            self._expiry[index + self.view_buckets] = [st]
        else:
            expiry.append(st)
        # a view at the account's view boundary; in between, only a hot minute is worth one
        due = not (index + 1 + st.phase) % self.view_buckets or self._hot(st, o)
        horizon = index - self.view_buckets
        start = _ring_end(raw, horizon)  # the view's closed buckets, ``index``'s last
        ring = at + 1 - start
        if due:  # rolled up before the cut below takes the first of them
            roll = _load(raw, start)  # summed in index order, as the C path does (``sum``
            first, last = roll[FIRST], roll[LAST]  # of floats is compensated from Python
            for i in range(start + 1, at + 1):  # 3.12: not the same bits)
                c = _load(raw, i)
                roll = array("d", map(add, roll, c))
                first, last = min(first, c[FIRST]), max(last, c[LAST])
            roll[FIRST], roll[LAST] = first, last
        # closed buckets no later view covers (the next one starts after ``horizon + 1``)
        gone = _ring_end(raw, horizon + 1)
        if gone > lo:  # slices are exactly sized; ``del`` keeps spare room
            raw = raw[: lo * _SIZE] + raw[gone * _SIZE :]
        st.buckets = raw
        if st.seen[0] > SEEN_CAP and (fresh := _Tables.prune_seen(st.seen, horizon)) is not None:
            st.seen = fresh
        if st.fps is not None and (fresh := _Tables.expire_fps(st.fps, horizon)) is not None:
            st.fps = fresh
        if not due or roll[REQ] < self.min_short:
            return None
        return st, roll, ring

    def _hot(self, st: AccountState, o: array) -> bool:
        """Is this closed minute far above the account's usual rate (or has it no history)?

        The short view slides by one bucket, but a view is only *built* every
        ``view_buckets`` buckets, or in between when a minute's requests or completion
        tokens reach ``hot_factor`` times the account's learned per-minute average (any
        minute with ``min_short`` requests while the account has fewer than ``young_views``
        learned views: a new account's first minutes are exactly when a burst starts). A burst
        is therefore scored the minute it starts, while a steady account costs one view
        per five minutes instead of five.
        """
        if o[REQ] < self.min_short:
            return False
        s = st.stats_short  # [n, last, mean log1p(requests/min), mean log1p(tokens/min), ..]
        if s is None or s[0] < self.young_views:
            return True  # too little history to call any minute ordinary
        hot = self._hot_log
        return math.log1p(o[REQ]) >= s[2] + hot or math.log1p(o[CT]) >= s[3] + hot

    def _close_hour(self, index: int) -> Iterator[View]:
        """The hour's end for every account active in it (a generator: see closing)."""
        hb = self.hour_buckets
        end = (index + 1) * self.bucket_seconds
        start = end - hb * self.bucket_seconds
        hour_no = (end - 1) // 3600
        ops, make = self._ops(), self._view_maker()
        in_hour, self._in_hour = self._in_hour, []
        for st in sorted(in_hour, key=_by_id):
            raw = st.buckets
            h = None
            if _hour_end(raw):
                h, st.buckets = _load(raw, 0), raw[_SIZE:]
            mask = st.hours_mask
            if hour_no - st.mask_hour >= 24:
                mask = 0
            else:  # forget the hours of day last seen 24 or more hours ago
                for old in range(st.mask_hour - 23, hour_no - 23):
                    mask &= ~(1 << (old % 24))
            st.set_hours(mask | (1 << (hour_no % 24)), hour_no)
            view = None
            if h is not None and h[REQ] >= self.min_long:
                view = make(LONG, st, float(start), float(end), h, index - hb, index, -h[IDX])
                view.values["active_hours_24h"] = float(st.hours_mask.bit_count())
            if (fresh := ops.prune_seen(st.seen, index - hb)) is not None:
                st.seen = fresh
            if view is not None:  # made before the prune, scored after it, as when eager
                yield view


def _by_id(st: AccountState) -> str:
    return st.account_id


def _bucket_index(b: array) -> float:
    return b[IDX]


def _hour_end(raw: array) -> int:
    """Where an account's hour accumulator ends in its stored buckets: at record 1, or 0
    without one."""
    return 1 if raw and _bidx(raw, 0) < 0 else 0


def _ring_end(raw: array, through: int) -> int:
    """The record where the buckets of index ``through`` or below end in an account's
    stored buckets (after the hour: the rest is in index order)."""
    at, n = _hour_end(raw), len(raw) // _SIZE
    while at < n and _bidx(raw, at) <= through:
        at += 1
    return at


def _see(st: AccountState, dim: int, value: str | int, index: int) -> int:
    """Stamp a sighting of ``value`` in bucket ``index`` into ``st.seen``; its new stamp."""
    key = seen_key(dim, value)
    t = st.seen
    p = pair_find(t, key)
    if t[p]:
        v = t[p + 1]
        if v >> _LAST != index:
            t[p + 1] = v = _stamp(v, index, dim)
        return v
    v = _stamp(None, index, dim)
    st.seen = pair_set(t, key, v)
    return v


def _stamp(v: int | None, index: int, dim: int) -> int:
    """The ``seen`` value after a sighting in bucket ``index`` (``v``: the value before).

    The previous sighting is kept as a distance back from the last (saturated: beyond
    2**28 buckets it is older than any window anyway).
    """
    if v is None:
        return index << _LAST | dim
    last = v >> _LAST
    if index > last:
        return index << _LAST | min(index - last, _BACK_MAX) << _BACK | (v & 15)
    back = last - index
    if back < (v >> _BACK) & _BACK_MAX:  # a late sighting in an older, still open bucket
        return (v & ~(_BACK_MAX << _BACK)) | back << _BACK
    return v


class _Tables:
    """The close path's operations on the ``seen`` and fingerprint tables, in Python: the
    reference. :mod:`pipeline._hot` has the same functions in C; a store uses those when
    ``native``, and AccountState.remember whenever C is built (tests/unit/test_table.py
    compares the two)."""

    @staticmethod
    def prune_seen(seen: array, through: int) -> array | None:
        """The table without values last seen at or before bucket ``through`` (unless
        known to the history), rebuilt to fit; None when there are none to drop."""
        floor = (through + 1) << _LAST
        if any(v < floor and not v & KNOWN for _, v in pair_items(seen)):
            return pair_rebuild(seen, lambda k, v: v >= floor or bool(v & KNOWN))
        return None

    @staticmethod
    def remember(seen: array, nets: list[int], agents: list[int]) -> None:
        """AccountState.remember on its ``seen`` table, in place: each of ``nets`` and
        ``agents`` present in the table becomes known, up to KNOWN_CAP per dimension."""
        known = [0] * 8
        for _, flags in pair_items(seen):
            if flags & KNOWN:
                known[flags & 7] += 1
        for keys, dim in ((nets, D_NET), (agents, D_AGENT)):
            for key in keys:
                p = pair_find(seen, key)
                v = seen[p + 1]
                if seen[p] and not v & KNOWN and known[dim] < KNOWN_CAP:
                    seen[p + 1] = v | KNOWN
                    known[dim] += 1

    @staticmethod
    def expire_fps(fps: array, through: int) -> array | None:
        """The table without fingerprints last seen at or before bucket ``through``; None
        when there are none to drop."""
        floor = (through + 1) << 1
        if any(v < floor for _, v in packed_items(fps)):
            return packed_rebuild(fps, lambda k, v: v >= floor)
        return None

    @staticmethod
    def scan_seen(
        seen: array, lo: int, hi: int
    ) -> tuple[list[int], list[int], list[int], list[int]]:
        """Distinct values per dimension seen in buckets ``lo + 1 .. hi``, and the keys of
        the networks, the clients and the addresses among them."""
        distinct = [0] * 8
        nets: list[int] = []
        agents: list[int] = []
        ips: list[int] = []
        for key, v in pair_items(seen):
            last = v >> _LAST
            if last > hi:  # seen again in a bucket still open: was it seen in the window too?
                last -= (v >> _BACK) & _BACK_MAX
            if lo < last <= hi:
                dim = v & 7
                distinct[dim] += 1
                if dim == D_NET:
                    nets.append(key)
                elif dim == D_AGENT:
                    agents.append(key)
                elif dim == D_IP:
                    ips.append(key)
        return distinct, nets, agents, ips

    @staticmethod
    def repeated_fps(fps: array, lo: int) -> list[int]:
        """Keys of the fingerprints repeated (templates) in a bucket after ``lo``."""
        return [key for key, v in packed_items(fps) if v & 1 and (v >> 1) > lo]
