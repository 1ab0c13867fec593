"""Per-account features in event-time windows.

Events fall into per-account buckets of ``bucket_seconds`` (one minute by default). A
bucket closes when the partition's watermark (the largest event time seen, minus the grace
period) passes its end. At that moment the account's last ``view_buckets`` closed buckets
are rolled into a short :class:`View` (the 5-minute view), and the bucket is added to the
account's hour; when the watermark passes an hour boundary, every account active in that
hour gets a long view (the 1-hour view). Scoring therefore happens once per active account
per bucket and per hour, never per request: the per-event cost is a few counter updates.
Views with fewer than ``min_short`` (5-minute) or ``min_long`` (hourly) requests are not
built at all: one or two requests cannot be extraction at scale, and most accounts are
that quiet most of the time.

Late events (older than the watermark allows) are folded into the account's earliest
open bucket: their volume still counts, their timestamp does not. That is the documented
late-event policy; nothing is discarded.

Views carry, besides the feature values, the networks and clients seen with their request
counts, so that the detector can measure novelty against the account's own history at
close time. Only counts and identifiers ever reach this module: no prompt or completion
content.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from pipeline.records import RISKY_KINDS, Enriched

SHORT, LONG = "5m", "1h"
_FP_CAP = 512  # distinct fingerprints tracked per window; beyond it reuse is reported as 0


@dataclass(slots=True)
class Bucket:
    """One account's activity in one bucket, or an hour of them merged (``minutes`` > 1)."""

    index: int
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0
    throttled: int = 0
    risky: int = 0
    fingerprinted: int = 0
    minutes: int = 0
    first_ts: float = float("inf")
    last_ts: float = 0.0
    keys: set[str] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)
    asns: set[int] = field(default_factory=set)
    countries: set[str] = field(default_factory=set)
    fingerprints: set[str] = field(default_factory=set)
    fp_overflow: bool = False
    nets: dict[str, int] = field(default_factory=dict)  # /24 or /48 -> requests
    agents: dict[str, int] = field(default_factory=dict)  # user agent -> requests

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
        if net.asn is not None:
            self.asns.add(net.asn)
        if net.country is not None:
            self.countries.add(net.country)
        prefix = net.prefix or ev.ip
        self.nets[prefix] = self.nets.get(prefix, 0) + 1
        self.agents[ev.user_agent] = self.agents.get(ev.user_agent, 0) + 1
        fp = ev.prompt_fingerprint
        if fp is not None:
            self.fingerprinted += 1
            if not self.fp_overflow:
                self.fingerprints.add(fp)
                if len(self.fingerprints) > _FP_CAP:
                    self.fp_overflow = True
                    self.fingerprints.clear()

    def merge(self, other: Bucket) -> None:
        """Add ``other`` (a closed bucket) into this accumulator."""
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.errors += other.errors
        self.throttled += other.throttled
        self.risky += other.risky
        self.fingerprinted += other.fingerprinted
        self.minutes += 1
        self.first_ts = min(self.first_ts, other.first_ts)
        self.last_ts = max(self.last_ts, other.last_ts)
        self.keys |= other.keys
        self.ips |= other.ips
        self.asns |= other.asns
        self.countries |= other.countries
        if other.fp_overflow or self.fp_overflow:
            self.fp_overflow = True
            self.fingerprints.clear()
        else:
            self.fingerprints |= other.fingerprints
            if len(self.fingerprints) > _FP_CAP:
                self.fp_overflow = True
                self.fingerprints.clear()
        for k, v in other.nets.items():
            self.nets[k] = self.nets.get(k, 0) + v
        for k, v in other.agents.items():
            self.agents[k] = self.agents.get(k, 0) + v


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
    nets: dict[str, int]
    agents: dict[str, int]
    fingerprints: set[str]  # distinct prompt fingerprints (empty past the cap)


@dataclass(slots=True)
class AccountWindows:
    """Open buckets, the recent closed ones, and the current hour of one account."""

    open: dict[int, Bucket] = field(default_factory=dict)
    closed: deque[Bucket] = field(default_factory=deque)
    hour: Bucket | None = None


def make_view(kind: str, acct_id: str, start: float, end: float, b: Bucket) -> View:
    """Feature values of an accumulated bucket over a window of ``end - start`` seconds."""
    n = b.requests
    minutes = (end - start) / 60.0
    if b.fp_overflow:
        reuse = 0.0
    else:
        reuse = (1.0 - len(b.fingerprints) / b.fingerprinted) if b.fingerprinted else 0.0
    values = {
        "requests_per_min": n / minutes,
        "prompt_tokens_per_min": b.prompt_tokens / minutes,
        "completion_tokens_per_min": b.completion_tokens / minutes,
        "completion_tokens_per_request": b.completion_tokens / n,
        "completion_prompt_ratio": b.completion_tokens / (b.prompt_tokens + 1.0),
        "distinct_api_keys": float(len(b.keys)),
        "distinct_ips": float(len(b.ips)),
        "distinct_networks": float(len(b.nets)),
        "distinct_asns": float(len(b.asns)),
        "distinct_countries": float(len(b.countries)),
        "risky_network_share": b.risky / n,
        "error_rate": b.errors / n,
        "throttled_rate": b.throttled / n,
        "template_reuse": reuse,
        "active_minutes": float(b.minutes),
    }
    counts = {
        "requests": n,
        "prompt_tokens": b.prompt_tokens,
        "completion_tokens": b.completion_tokens,
        "fingerprinted": b.fingerprinted,
        "distinct_api_keys": len(b.keys),
        "distinct_ips": len(b.ips),
        "distinct_networks": len(b.nets),
        "risky_network_requests": b.risky,
    }
    return View(
        kind,
        acct_id,
        start,
        end,
        b.first_ts,
        b.last_ts,
        values,
        counts,
        b.nets,
        b.agents,
        b.fingerprints,
    )


class WindowStore:
    """Event-time windows of every account of one partition.

    ``add`` places an event; ``advance`` returns the views that the watermark has closed,
    grouped by bucket index, in (index, kind, account id) order, so the output is a pure
    function of the partition's event sequence.
    """

    def __init__(
        self,
        bucket_seconds: int,
        view_buckets: int,
        grace_seconds: float,
        hour_buckets: int | None = None,
        min_short: int = 3,
        min_long: int = 10,
    ) -> None:
        self.bucket_seconds = bucket_seconds
        self.view_buckets = view_buckets
        self.hour_buckets = hour_buckets or max(1, 3600 // bucket_seconds)
        self.grace = grace_seconds
        self.min_short = min_short  # fewer requests than this: no view (nothing to score)
        self.min_long = min_long
        self.accounts: dict[str, AccountWindows] = {}
        self._active: dict[int, list[str]] = {}  # bucket index -> accounts with a bucket there
        self._in_hour: set[str] = set()  # accounts with activity in the current hour
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
            active = self._active.get(index)
            if active is None:
                self._active[index] = [acct_id]
            else:
                active.append(acct_id)
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
        hb = self.hour_buckets
        first = self.closed_through + 1
        indices = {i for i in self._active if i <= target}
        # hour boundaries crossed, even where no account was active in that very bucket
        boundary = first + (-(first + 1)) % hb
        indices.update(range(boundary, target + 1, hb))
        out: list[tuple[int, list[View]]] = []
        for index in sorted(indices):
            views = [
                v
                for a in sorted(self._active.pop(index, ()))
                if (v := self._close(a, index)) is not None
            ]
            if (index + 1) % hb == 0:
                views.extend(self._close_hour(index))
            out.append((index, views))
        self.closed_through = target
        return out

    def _close(self, acct_id: str, index: int) -> View | None:
        acct = self.accounts[acct_id]
        bucket = acct.open.pop(index)
        closed = acct.closed
        closed.append(bucket)
        horizon = index - self.view_buckets
        while closed and closed[0].index <= horizon:
            closed.popleft()
        if acct.hour is None:
            acct.hour = Bucket(index)
            self._in_hour.add(acct_id)
        acct.hour.merge(bucket)
        if sum(b.requests for b in closed) < self.min_short:
            return None
        end = (index + 1) * self.bucket_seconds
        start = end - self.view_buckets * self.bucket_seconds
        roll = Bucket(index)
        for b in closed:
            roll.merge(b)
        return make_view(SHORT, acct_id, float(start), float(end), roll)

    def _close_hour(self, index: int) -> list[View]:
        end = (index + 1) * self.bucket_seconds
        start = end - self.hour_buckets * self.bucket_seconds
        views = []
        for acct_id in sorted(self._in_hour):
            acct = self.accounts[acct_id]
            if acct.hour is not None:
                if acct.hour.requests >= self.min_long:
                    views.append(make_view(LONG, acct_id, float(start), float(end), acct.hour))
                acct.hour = None
        self._in_hour.clear()
        return views

    def evict_idle(self, before_index: int) -> int:
        """Forget window state of accounts with no open bucket, no hour in progress and no
        closed bucket at or after ``before_index`` (their learned history lives elsewhere)."""
        idle = [
            a
            for a, w in self.accounts.items()
            if not w.open and w.hour is None and (not w.closed or w.closed[-1].index < before_index)
        ]
        for a in idle:
            del self.accounts[a]
        return len(idle)
