"""THE pipeline, pure: decode -> enrich -> features -> detectors -> alert policy.

The live worker, replay, evaluation and the benchmarks all call :class:`Flow`; that is what
makes a live run and a replay of the same events give the same alerts.

Determinism. All learned state is sharded by input partition (:class:`Shard`): a shard's
windows, baselines and episodes are a pure function of that partition's event sequence,
and event time (never the wall clock) drives every window close. Kafka keeps each
partition's order, so however partitions are spread over workers, interleaved, or
replayed, each shard sees the same sequence and emits the same alerts. Offline inputs
without partitions are sharded the way the Kafka producer would partition them
(murmur2 of the key, :func:`partition_for`).

Per-event cost is decode, two dict lookups for enrichment, and counter updates; scoring
runs once per active account per closed bucket. For an ordinary valid event those steps run
in C (:mod:`pipeline._hot`, built with the package when a compiler is present) on the same
state objects; anything else takes the Python path below, which is the reference the C
code is tested against.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
from kafka.partitioner.default import murmur2

from pipeline import codec
from pipeline.alerts.policy import AlertPolicy
from pipeline.codec import decode_request
from pipeline.detect.account import AccountDetector
from pipeline.detect.campaigns import CampaignDetector, CampaignStage, Digest, campaign_input
from pipeline.detect.population import CohortAnomaly, PopulationBaselines
from pipeline.enrich.accounts import AccountDirectory
from pipeline.enrich.network import NetworkEnricher
from pipeline.features import windows as _windows
from pipeline.features.windows import RECENT_IDS, SHORT, WindowStore
from pipeline.records import (
    RISKY_KINDS,
    Alert,
    DeadLetter,
    Enriched,
    InvalidEvent,
    RequestEvent,
    Source,
)
from pipeline.settings import DetectorSettings

try:
    from pipeline import _hot
except ImportError:  # installed without a C compiler: the Python path does everything
    _hot = None
else:
    _hot.configure(
        loads=orjson.loads,
        normalize_ip=codec.normalize_ip,
        seconds=codec._SECONDS,
        risky_kinds=RISKY_KINDS,
        empty_bucket=_windows._EMPTY,
        bucket_probe=_windows.pack_buckets(array("d", range(1, _windows.K + 1))),
        account_state=_windows.AccountState,
        max_event_bytes=codec.MAX_EVENT_BYTES,
    )

#: True when the C hot path is built and in use by default.
NATIVE = _hot is not None


def campaign_detector(cfg: DetectorSettings) -> CampaignDetector:
    """The campaign detector of these settings (one per flow, or per campaign agent)."""
    return CampaignDetector(
        cfg.bucket_seconds, resolve_after=cfg.resolve_after_minutes * 60 // cfg.bucket_seconds
    )


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner picks for ``key``.

    In C when the hot path is built: kafka-python's pure-Python murmur2 costs ~2.3 us, a
    tenth of a replayed event's whole cost."""
    if _hot is not None and type(key) is bytes:
        return _hot.partition(key, partitions)
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(slots=True)
class Counters:
    """What happened to every consumed record: consumed = processed + dead_lettered."""

    consumed: int = 0
    processed: int = 0
    dead_lettered: int = 0
    late: int = 0
    alerts: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Output:
    """What one message produced. Usually both lists are empty."""

    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    enriched: list[Enriched] = field(default_factory=list)  # only when the flow keeps them
    digests: list[Digest] = field(default_factory=list)  # only with an external campaign stage

    def __bool__(self) -> bool:
        return bool(self.alerts or self.dead_letters or self.enriched or self.digests)


def is_packed(value: bytes | None) -> bool:
    """Does the message carry many events (newline-delimited JSON)? A newline inside it once
    whitespace is stripped from both ends; a single event may end with a newline."""
    return bool(value) and b"\n" in value and b"\n" in value.strip()  # type: ignore[operator]


#: _hot.event's answer for a packed message (is_packed), and Flow._one's.
_C_PACKED = -2
_C_NO_STORE = -3  # _hot.feed: a record it could not take at all (process() takes it)
_PACKED = Output((), (), (), ())  # type: ignore[arg-type]

#: What most messages produce: nothing. Shared, so its fields are empty tuples: reading it
#: works like any Output, appending to it fails loudly.
NOTHING = Output((), (), (), ())  # type: ignore[arg-type]


class Shard:
    """Windows, baselines and episodes of one input partition."""

    def __init__(self, cfg: DetectorSettings, native: bool = True) -> None:
        self.cfg = cfg
        self.windows = WindowStore(
            cfg.bucket_seconds, cfg.view_buckets, cfg.grace_seconds, native=native
        )
        self.detector = AccountDetector(
            PopulationBaselines(cfg.baseline_alpha, cfg.warmup_windows),
            cfg.z_alert,
            cfg.z_learn,
            paid_tiers=cfg.paid_tiers,
            anomaly=CohortAnomaly(seed=cfg.model_seed, q=cfg.anomaly_quantile),
            drift_threshold=cfg.drift_threshold,
        )
        self.policy = AlertPolicy(
            cfg.z_alert,
            cfg.bucket_seconds,
            cfg.resolve_after_minutes * 60 // cfg.bucket_seconds,
            cfg.cooldown_minutes * 60 // cfg.bucket_seconds,
            cfg.allow_accounts,
        )
        self.first_index: int | None = None
        self.counts = Counters()  # this partition's records only (checkpointed with it)
        self.next_offset = 0  # the input offset after the last message in this state
        self.warm_from = cfg.warmup_minutes * 60 // cfg.bucket_seconds
        self.warm_long = max(self.warm_from, 2 * self.windows.hour_buckets)

    def advance(self, accounts: AccountDirectory, out: list[Alert], digest: Digest) -> None:
        """Close the buckets the watermark passed; score their views; apply the policy.

        Closed 5-minute views with campaign links go into ``digest`` for the campaign stage.
        """
        entries = digest.entries
        for index, views in self.windows.closing():  # lazily: see there
            age = index - (self.first_index if self.first_index is not None else index)
            inputs = []
            for view in views:
                # an hourly view needs two whole hours behind its baselines to mean anything
                warm = age >= (self.warm_from if view.kind == SHORT else self.warm_long)
                account = accounts.get(view.account_id)
                finding = self.detector.score(view, account, warm)
                if view.kind == SHORT and (inp := campaign_input(view, account)) is not None:
                    inputs.append(inp)
                if finding is not None and finding.flagged:
                    alert = self.policy.on_finding(finding, index)
                    if alert is not None:
                        out.append(alert)
            if inputs:
                entries.append((index, inputs))
            out.extend(self.policy.on_tick(index))
        digest.through = self.windows.closed_through


class Flow:
    """The detection core over plain records. Not thread-safe; one per worker process."""

    def __init__(
        self,
        cfg: DetectorSettings,
        network: NetworkEnricher,
        accounts: AccountDirectory | None = None,
        keep_enriched: bool = False,
        partitions: set[int] | None = None,
        external_campaigns: bool = False,
        native: bool = True,
    ) -> None:
        """``native=False`` keeps every event on the Python path (tests compare the two)."""
        self.cfg = cfg
        self.native = native
        self.keep_enriched = keep_enriched
        # the C hot path counts ordinary events straight into the windows; kept records
        # (keep_enriched) need the Python path, which builds them
        self._event = _hot.event if native and _hot is not None and not keep_enriched else None
        self._skew = float(cfg.max_future_skew_s)
        self._seen: set[int] = set()
        # the campaign stage waits for ``partitions`` (None: for every partition seen so far);
        # with ``external_campaigns`` it runs elsewhere and shards emit digests instead
        self.stage: CampaignStage | None = (
            None
            if external_campaigns
            else CampaignStage(campaign_detector(cfg), partitions if partitions else self._seen)
        )
        self.network = network
        self.accounts = accounts if accounts is not None else AccountDirectory()
        CohortAnomaly.prepare(cfg.model_seed)  # the shards' models' trees, with the flow
        self.shards: dict[int, Shard] = {}
        self.counters = Counters()
        self.score_observer = None  # (view, score, flagged) -> None, for every scored view

    def shard(self, partition: int) -> Shard:
        sh = self.shards.get(partition)
        if sh is None:
            sh = self.shards[partition] = Shard(self.cfg, self.native)
            sh.detector.observer = self.score_observer
            self._seen.add(partition)
        return sh

    def adopt_shard(self, partition: int, shard: Shard) -> None:
        """Take over a shard restored from a snapshot (pipeline.state)."""
        shard.detector.observer = self.score_observer
        self.shards[partition] = shard
        self._seen.add(partition)

    def retain_shards(self, partitions: set[int]) -> None:
        """Drop the state of partitions this worker no longer owns.

        Their state continues on whichever worker now owns them (the worker snapshots every
        shard when partitions are revoked; see pipeline.state); if one comes back here it
        is restored from its latest snapshot, never kept stale in memory.
        """
        for p in [p for p in self.shards if p not in partitions]:
            del self.shards[p]

    def process_message(self, key: bytes | None, value: bytes | None, source: Source) -> Output:
        """:meth:`process` of a message at ``source``."""
        return self.process(key, value, source.partition, source.offset, source.topic)

    def process(
        self, key: bytes | None, value: bytes | None, partition: int, offset: int, topic: str = ""
    ) -> Output:
        """One Kafka message (at ``topic``, ``partition``, ``offset``): a single JSON event,
        or many as newline-delimited JSON (:func:`is_packed`).

        A bad event (or a bad line of a packed message) becomes a DeadLetter with its reason
        and its :class:`Source`; the rest of the message is still processed. The Source is
        built only then: an ordinary event costs no object.
        """
        sh = self.shards.get(partition)
        if sh is None:
            sh = self.shard(partition)
        event = self._event
        r = -1 if event is None else event(sh.windows, self.network, value, self._skew)
        if r == 0:  # counted in C, closes nothing: the common case
            self._count(sh, 1)
            sh.next_offset = offset + 1
            return NOTHING
        return self._answer(r, key, value, partition, offset, topic, sh)

    def process_records(self, records: list[tuple], topic: str = "") -> Iterator[Output]:
        """Every record ``(partition, offset, key, value, ...)`` of ``records``, in order,
        exactly as :meth:`process` of each would do; yields the outputs that are not
        NOTHING. Replay's loop: in C (``_hot.feed``), a run of ordinary events never
        comes back to Python, not even to count them; the first record it does not
        answer 0 for comes here, as :meth:`process`'s would."""
        feed = None if self._event is None else _hot.feed
        i, n = 0, len(records)
        while i < n:
            r = _C_NO_STORE
            if feed is not None:
                stores = [None] * (max(self.shards, default=-1) + 1)
                for p, sh in self.shards.items():
                    if p >= 0:
                        stores[p] = sh.windows
                fed = array("q", bytes(16 * len(stores)))
                try:
                    i, r = feed(stores, self.network, records, i, self._skew, fed)
                finally:
                    for p in range(len(stores)):
                        if fed[2 * p]:
                            sh = self.shards[p]
                            self._count(sh, fed[2 * p])
                            sh.next_offset = fed[2 * p + 1]
                if i == n:
                    return
            p, offset, key, value = records[i][:4]
            if r == _C_NO_STORE:
                out = self.process(key, value, p, offset, topic)
            else:
                out = self._answer(r, key, value, p, offset, topic, self.shards[p])
            if out is not NOTHING:
                yield out
            i += 1

    def _answer(
        self,
        r: int,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        offset: int,
        topic: str,
        sh: Shard,
    ) -> Output:
        """The rest of :meth:`process` once the C path has answered ``r`` (not 0)."""
        event = self._event
        out = self._one(r, key, value, topic, partition, offset, 0, NOTHING, sh)
        if out is _PACKED:
            out = NOTHING  # replaced by a new Output only when a line produces something
            counted = 0
            for n, line in enumerate(value.split(b"\n"), start=1):  # type: ignore[union-attr]
                if line and not line.isspace():
                    r = -1 if event is None else event(sh.windows, self.network, line, self._skew)
                    if r == 0:
                        counted += 1
                    else:
                        out = self._one(r, key, line, topic, partition, offset, n, out, sh)
            self._count(sh, counted)
        sh.next_offset = offset + 1
        return out

    def _count(self, sh: Shard, n: int) -> None:
        """``n`` events counted in C that closed nothing: consumed and processed."""
        c, sc = self.counters, sh.counts
        c.consumed += n
        sc.consumed += n
        c.processed += n
        sc.processed += n

    def _one(
        self,
        r: int,
        key: bytes | None,
        raw: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        line: int,
        out: Output,
        sh: Shard,
    ) -> Output:
        """One consumed event (``line`` > 0: that line of a packed message) that the C path
        answered ``r`` (not 0) for: counted in C but closing buckets or late (r > 0), or
        left to the Python path (r < 0). Returns ``out``, or a new Output in its place if it
        was NOTHING and this event produced something; or ``_PACKED``, having counted
        nothing, when a whole message (``line`` 0) is packed."""
        c, sc = self.counters, sh.counts
        if r == _C_PACKED or (self._event is None and not line and is_packed(raw)):
            return _PACKED  # (the C path tests every bytes value itself)
        c.consumed += 1
        sc.consumed += 1
        if out is NOTHING:
            out = Output()
        if r > 0:  # counted in C: bit 0 = late, bit 1 = a bucket is due to close
            self._counted(sh, partition, out, r & 1, r & 2)
        else:  # the C path changed nothing: the Python path names what is unusual
            self._python(key, raw, Source(topic, partition, offset, line or None), out, sh)
        return out

    def _python(
        self, key: bytes | None, raw: bytes | None, source: Source, out: Output, sh: Shard
    ) -> None:
        """The reference path for one consumed event: decode, dead-letter or process."""
        ev = decode_request(raw or b"")
        if type(ev) is InvalidEvent:
            self._dead_letter(ev, key, raw, source, out)
            return
        self._process(ev, sh, source.partition, out, key, raw, source)

    def process_event(
        self,
        ev: RequestEvent,
        partition: int,
        out: Output,
        key: bytes | None = None,
        raw: bytes | None = None,
        source: Source | None = None,
    ) -> None:
        """A decoded event of ``partition``: enrich, window, and close what the watermark passed."""
        sh = self.shards.get(partition)
        if sh is None:
            sh = self.shard(partition)
        self._process(ev, sh, partition, out, key, raw, source)

    def _process(
        self,
        ev: RequestEvent,
        sh: Shard,
        partition: int,
        out: Output,
        key: bytes | None,
        raw: bytes | None,
        source: Source | None,
    ) -> None:
        windows = sh.windows
        mx = windows.max_ts
        ts = ev.ts
        if mx is not None and ts - mx > self.cfg.max_future_skew_s:
            bad = InvalidEvent(
                "timestamp_too_far_ahead",
                f"ts is more than {self.cfg.max_future_skew_s:.0f} s ahead of the partition",
            )
            self._dead_letter(bad, key, raw, source or Source("", partition, 0), out)
            return
        rec = Enriched(ev, self.accounts.get(ev.account_id), self.network.lookup(ev.ip, ts))
        late_before = windows.late_events
        if not windows.add(rec):
            bad = InvalidEvent(
                "duplicate_event",
                f"event_id {ev.event_id[:64]!r} is one of the account's last {RECENT_IDS}",
            )
            self._dead_letter(bad, key, raw, source or Source("", partition, 0), out)
            return
        if self.keep_enriched:
            out.enriched.append(rec)
        if sh.first_index is None:
            sh.first_index = int(ts // self.cfg.bucket_seconds)
        self._counted(
            sh,
            partition,
            out,
            windows.late_events - late_before,
            windows.due(),
        )

    def _counted(self, sh: Shard, partition: int, out: Output, late: int, due: bool) -> None:
        """An event was counted into the windows; close the buckets that are ``due``."""
        c = self.counters
        c.late += late
        c.processed += 1
        sc = sh.counts
        sc.late += late
        sc.processed += 1
        if due:
            before = len(out.alerts)
            digest = Digest(partition, -1, [])
            sh.advance(self.accounts, out.alerts, digest)
            if self.stage is None:
                out.digests.append(digest)
            else:
                out.alerts.extend(self.stage.offer(digest))
            c.alerts += len(out.alerts) - before

    def internal_error(
        self, key: bytes | None, value: bytes | None, source: Source, exc: Exception
    ) -> Output:
        """A record the core failed on (a defect, never bad input): dead-letter it whole."""
        out = Output()
        bad = InvalidEvent("internal_error", f"{type(exc).__name__}: {str(exc)[:200]}")
        self._dead_letter(bad, key, value, source, out)
        return out

    def _dead_letter(
        self, bad: InvalidEvent, key: bytes | None, raw: bytes | None, source: Source, out: Output
    ) -> None:
        for c in (self.counters, self.shard(source.partition).counts):
            c.dead_lettered += 1
            c.dead_letter_reasons[bad.reason] = c.dead_letter_reasons.get(bad.reason, 0) + 1
        out.dead_letters.append(DeadLetter(bad.reason, bad.detail, source, key, raw))
