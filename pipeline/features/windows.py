"""Per-account features in event-time windows.

Events fall into per-account buckets of ``bucket_seconds`` (one minute by default). A
bucket closes when the partition's watermark (the largest event time seen, minus the grace
period) passes its end; at that moment the account's last ``view_buckets`` closed buckets
are rolled into one :class:`View` (the 5-minute view) and handed to the detectors. Scoring
therefore happens once per active account per bucket, not once per request: the per-event
cost is a few counter updates.

Late events (older than the watermark allows) are folded into the account's earliest
open bucket: their volume still counts, their timestamp does not. That is the documented
late-event policy; nothing is discarded.

Only what detection needs is kept: counts, and sets of identifiers for distinct counts.
No prompt or completion content ever reaches this module.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from pipeline.records import RISKY_KINDS, Enriched

#: Feature names of a view, in a fixed order (reasons and schemas refer to them).
FEATURES = (
    "requests_per_min",
    "prompt_tokens_per_min",
    "completion_tokens_per_min",
    "completion_tokens_per_request",
    "completion_prompt_ratio",
    "distinct_api_keys",
    "distinct_ips",
    "distinct_networks",
    "risky_network_share",
    "error_rate",
    "throttled_rate",
    "template_reuse",
    "active_minutes",
)


@dataclass(slots=True)
class Bucket:
    """One account's activity in one event-time bucket."""

    index: int
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0
    throttled: int = 0
    risky: int = 0
    fingerprinted: int = 0
    first_ts: float = float("inf")
    last_ts: float = 0.0
    keys: set[str] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)
    networks: set[str] = field(default_factory=set)
    fingerprints: set[str] = field(default_factory=set)

    def add(self, rec: Enriched) -> None:
        ev = rec.event
        self.requests += 1
        self.prompt_tokens += ev.prompt_tokens
        self.completion_tokens += ev.completion_tokens
        status = ev.status
        if status == 429:
            self.throttled += 1
        elif status >= 400:
            self.errors += 1
        net = rec.network
        if net.kind in RISKY_KINDS:
            self.risky += 1
        ts = ev.ts
        if ts < self.first_ts:
            self.first_ts = ts
        if ts > self.last_ts:
            self.last_ts = ts
        self.keys.add(ev.api_key_id)
        self.ips.add(ev.ip)
        self.networks.add(net.prefix or ev.ip)
        fp = ev.prompt_fingerprint
        if fp is not None:
            self.fingerprinted += 1
            self.fingerprints.add(fp)


@dataclass(slots=True)
class View:
    """The rolled view of one account over its last ``view_buckets`` buckets."""

    account_id: str
    start: float
    end: float
    first_ts: float
    last_ts: float
    values: dict[str, float]
    counts: dict[str, int]


@dataclass(slots=True)
class AccountWindows:
    """Open buckets and the recent closed ones of one account."""

    open: dict[int, Bucket] = field(default_factory=dict)
    closed: deque[Bucket] = field(default_factory=deque)


class WindowStore:
    """Event-time windows of every account of one partition.

    ``add`` places an event; ``advance`` returns the views of buckets that the watermark
    has closed, in (bucket, account id) order, so the output is a pure function of the
    partition's event sequence.
    """

    def __init__(self, bucket_seconds: int, view_buckets: int, grace_seconds: float) -> None:
        self.bucket_seconds = bucket_seconds
        self.view_buckets = view_buckets
        self.grace = grace_seconds
        self.accounts: dict[str, AccountWindows] = {}
        self._active: dict[int, list[str]] = {}  # bucket index -> accounts with a bucket there
        self.closed_through: int | None = None  # highest closed bucket index
        self.max_ts: float | None = None
        self.late_events = 0

    def add(self, rec: Enriched) -> None:
        ts = rec.event.ts
        index = int(ts // self.bucket_seconds)
        if self.closed_through is not None and index <= self.closed_through:
            index = self.closed_through + 1  # late: fold into the earliest open bucket
            self.late_events += 1
        acct_id = rec.event.account_id
        acct = self.accounts.get(acct_id)
        if acct is None:
            acct = self.accounts[acct_id] = AccountWindows()
        bucket = acct.open.get(index)
        if bucket is None:
            bucket = acct.open[index] = Bucket(index)
            self._active.setdefault(index, []).append(acct_id)
        bucket.add(rec)
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts = ts
            if self.closed_through is None:
                self.closed_through = index - 1

    def watermark_index(self) -> int | None:
        """The highest bucket index the watermark has closed (None before any event)."""
        if self.max_ts is None:
            return None
        return int((self.max_ts - self.grace) // self.bucket_seconds) - 1

    def advance(self) -> list[tuple[int, list[View]]]:
        """Close every bucket the watermark has passed; views grouped per closed bucket."""
        target = self.watermark_index()
        if target is None or self.closed_through is None or target <= self.closed_through:
            return []
        out: list[tuple[int, list[View]]] = []
        for index in sorted(i for i in self._active if i <= target):
            views = [self._close(acct_id, index) for acct_id in sorted(self._active.pop(index))]
            out.append((index, views))
        self.closed_through = target
        return out

    def _close(self, acct_id: str, index: int) -> View:
        acct = self.accounts[acct_id]
        bucket = acct.open.pop(index)
        closed = acct.closed
        closed.append(bucket)
        horizon = index - self.view_buckets
        while closed and closed[0].index <= horizon:
            closed.popleft()
        return self._view(acct_id, index, closed)

    def _view(self, acct_id: str, index: int, buckets: deque[Bucket]) -> View:
        n = pt = ct = err = thr = risky = fpd = 0
        first, last = float("inf"), 0.0
        keys: set[str] = set()
        ips: set[str] = set()
        nets: set[str] = set()
        fps: set[str] = set()
        for b in buckets:
            n += b.requests
            pt += b.prompt_tokens
            ct += b.completion_tokens
            err += b.errors
            thr += b.throttled
            risky += b.risky
            fpd += b.fingerprinted
            first = min(first, b.first_ts)
            last = max(last, b.last_ts)
            keys |= b.keys
            ips |= b.ips
            nets |= b.networks
            fps |= b.fingerprints
        minutes = self.view_buckets * self.bucket_seconds / 60.0
        values = {
            "requests_per_min": n / minutes,
            "prompt_tokens_per_min": pt / minutes,
            "completion_tokens_per_min": ct / minutes,
            "completion_tokens_per_request": ct / n,
            "completion_prompt_ratio": ct / (pt + 1.0),
            "distinct_api_keys": float(len(keys)),
            "distinct_ips": float(len(ips)),
            "distinct_networks": float(len(nets)),
            "risky_network_share": risky / n,
            "error_rate": err / n,
            "throttled_rate": thr / n,
            "template_reuse": (1.0 - len(fps) / fpd) if fpd else 0.0,
            "active_minutes": float(len(buckets)),
        }
        counts = {
            "requests": n,
            "prompt_tokens": pt,
            "completion_tokens": ct,
            "distinct_api_keys": len(keys),
            "distinct_ips": len(ips),
            "distinct_networks": len(nets),
            "risky_network_requests": risky,
        }
        end = (index + 1) * self.bucket_seconds
        start = end - self.view_buckets * self.bucket_seconds
        return View(acct_id, float(start), float(end), first, last, values, counts)

    def evict_idle(self, before_index: int) -> int:
        """Forget accounts with no open bucket and no closed bucket at or after ``before_index``."""
        idle = [
            a
            for a, w in self.accounts.items()
            if not w.open and (not w.closed or w.closed[-1].index < before_index)
        ]
        for a in idle:
            del self.accounts[a]
        return len(idle)
