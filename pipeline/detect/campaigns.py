"""Coordinated campaigns: many accounts that each look modest but act as one.

Hydra clusters keep every account under its limits; what gives them away is what they
share. Each closed 5-minute view contributes *links* for its account:

* ``template``: a prompt fingerprint the account reuses (view ``template_reuse`` >= 0.5),
  i.e. a templated prompt; benign one-off prompts never link;
* ``payment``: the account's payment fingerprint;
* ``infra``: an (address, HTTP client) pair the view used, only from a
  *suspicious* view (two of: account younger than 30 days, no verified payment, mostly
  hosting/VPN/Tor/proxy traffic) of a known account, at most ``MAX_INFRA`` per view. An
  address, not its /24: one cloud /24 serves many unrelated tenants running one SDK.

Shared infrastructure alone is weak evidence: a university or a company behind one NAT, or
customers of one cloud using one SDK, share it without being a campaign. Hence infra links
come only from suspicious views (an established or verified account never links by its
network), and a component held together by infra links alone is a campaign only when it is
also a *creation cohort*: at least ``cohort_share`` of its members were created within
``cohort_days`` of the members' median creation time (fleets are registered in batches;
benign neighbours are not). Accounts of the same organisation count once: an org's own
accounts may share templates and networks.

Every ``every`` buckets, the accounts linked within the last ``window`` buckets are grouped
into connected components. A component is a campaign when it spans at least
``min_orgs`` organisations and its members look like a throwaway fleet: most are young
(< 30 days), unverified or on hosting/VPN/Tor/proxy networks. Its alert lists the members
and is updated as members join (``update`` when the membership grew by a quarter or by
``min_orgs`` accounts); it resolves when no member has been active for ``resolve_after``
buckets. A campaign's identity survives growth: a component that shares a member with an
open campaign *is* that campaign. ``alert_id`` hashes the first members and the opening
bucket, so every run over the same events gives the same id.

Input must arrive in bucket order with a deterministic order inside a bucket (the flow
guarantees both), so the output is a pure function of the events.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from pipeline.alerts.policy import stable_id
from pipeline.features.windows import View
from pipeline.records import Account, Alert, Reason

DETECTOR = "campaign-shared-links"
_DAY = 86_400.0
MAX_INFRA = 16  # infra links per view: (network, client) pairs in key order
STRONG = ("template", "payment")  # link kinds that make a campaign without a cohort


@dataclass(slots=True)
class CampaignInput:
    """What the campaign stage needs of one closed 5-minute view and its account.

    Plain values only (no view, no account record), so that shards can hand it to a
    campaign stage running in another process (:func:`pipeline.codec.encode_digest`).
    """

    account_id: str
    keys: list[tuple[str, str]]  # links: (kind, value), kinds "template", "payment", "infra"
    org: str
    young: bool
    unverified: bool
    risky: bool
    requests: int
    completion_tokens: int
    first_ts: float
    last_ts: float
    created_at: float | None = None  # the account's creation time (None: unknown account)


def _suspicious(young: bool, unverified: bool, risky: bool) -> bool:
    """Two of three marks of a throwaway account: young, unverified, on risky networks."""
    return young + unverified + risky >= 2


def campaign_input(view: View, account: Account | None) -> CampaignInput | None:
    """The view's links, or None when it has none (it cannot join a campaign)."""
    keys: list[tuple[str, str]] = []
    if view.values["template_reuse"] >= 0.5 and view.fingerprints:
        keys.extend(("template", fp) for fp in sorted(view.fingerprints))
    if account is not None and account.payment_fingerprint:
        keys.append(("payment", account.payment_fingerprint))
    young = account is None or (view.end - account.created_at) < 30 * _DAY
    unverified = account is None or not account.payment_verified
    risky = view.values["risky_network_share"] >= 0.5
    if account is not None and _suspicious(young, unverified, risky):
        # an unknown account has no creation time, so it can never make a creation
        # cohort: its infra links could only cost memory (a link table entry per address)
        pairs = sorted(f"{ip:x}/{agent:x}" for ip in view.ips for agent in view.agents)
        keys.extend(("infra", pair) for pair in pairs[:MAX_INFRA])
    if not keys:
        return None
    return CampaignInput(
        account_id=view.account_id,
        keys=keys,
        org=account.org_id if account else view.account_id,
        young=young,
        unverified=unverified,
        risky=risky,
        requests=view.counts["requests"],
        completion_tokens=view.counts["completion_tokens"],
        first_ts=view.first_ts,
        last_ts=view.last_ts,
        created_at=account.created_at if account else None,
    )


@dataclass(slots=True)
class Digest:
    """What one shard closed in one step: every bucket index up to ``through`` is closed
    on ``partition``; ``entries`` are (index, inputs) for the closed buckets with inputs."""

    partition: int
    through: int
    entries: list[tuple[int, list[CampaignInput]]]


class CampaignStage:
    """Feeds a :class:`CampaignDetector` every bucket that all expected partitions closed.

    Within a bucket, inputs go in account-id order, so the output does not depend on how
    partitions interleave, on which worker closed them, or on whether they ran in this
    process (the offline flow) or arrived as digests (the live worker's campaign agent).
    A digest the stage has already seen (a shard replaying after a restart) is ignored,
    so offering the same digests twice changes nothing. A partition that has reported
    nothing yet holds the stage back: it cannot know the bucket is complete.
    """

    def __init__(self, detector: CampaignDetector, expected: set[int] | None = None) -> None:
        self.detector = detector
        self.expected = expected  # None: the partitions seen so far
        self.closed: dict[int, int] = {}
        self._pending: dict[int, list[CampaignInput]] = {}
        self._through: int | None = None

    def offer(self, digest: Digest) -> list[Alert]:
        """One shard's step; returns the campaign alerts of every bucket it completed."""
        p = digest.partition
        seen = self.closed.get(p)
        if seen is not None and digest.through <= seen:
            return []
        for index, inputs in digest.entries:
            if seen is None or index > seen:
                self._pending.setdefault(index, []).extend(inputs)
        self.closed[p] = digest.through
        return self._run()

    def _run(self) -> list[Alert]:
        expected = self.expected if self.expected is not None else set(self.closed)
        if not expected or any(p not in self.closed for p in expected):
            return []
        through = min(self.closed[p] for p in expected)
        start = self._through
        if start is None:
            start = min(self._pending, default=through + 1) - 1
        out: list[Alert] = []
        det = self.detector
        for index in range(start + 1, through + 1):
            for inp in sorted(self._pending.pop(index, ()), key=_by_account):
                det.observe(inp, index)
            out.extend(det.tick(index))
        self._through = max(start, through)
        return out


def _by_account(inp: CampaignInput) -> str:
    return inp.account_id


@dataclass(slots=True)
class _Member:
    last: int  # last bucket index the account was active with a link
    org: str
    suspicious: bool
    risky: bool
    young: bool
    unverified: bool
    requests: int = 0
    completion_tokens: int = 0
    first_ts: float = float("inf")
    last_ts: float = 0.0
    created_at: float | None = None


@dataclass(slots=True)
class _Campaign:
    alert_id: str
    opened: int
    members: set[str]
    reported: int  # member count at the last emitted alert
    last_active: int
    severity: str
    keys: set[tuple[str, str]] = field(default_factory=set)
    resolved_at: int | None = None


class CampaignDetector:
    """Online grouping of linked accounts into campaigns (see the module docstring)."""

    def __init__(
        self,
        bucket_seconds: int = 60,
        window: int = 60,
        every: int = 5,
        min_orgs: int = 5,
        suspicious_share: float = 0.6,
        resolve_after: int = 30,
        cohort_days: float = 1.0,
        cohort_share: float = 0.8,
    ) -> None:
        self.bucket_seconds = bucket_seconds
        self.window = window
        self.every = every
        self.min_orgs = min_orgs
        self.suspicious_share = suspicious_share
        self.resolve_after = resolve_after
        self.cohort_days = cohort_days
        self.cohort_share = cohort_share
        self._links: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        self._members: dict[str, _Member] = {}
        self.campaigns: list[_Campaign] = []

    def observe(self, inp: CampaignInput, index: int) -> None:
        """One account's links from a closed 5-minute view of bucket ``index``."""
        acct = inp.account_id
        for key in inp.keys:
            self._links[key][acct] = index
        m = self._members.get(acct)
        if m is None:
            m = self._members[acct] = _Member(
                index, inp.org, False, inp.risky, inp.young, inp.unverified
            )
        m.last = index
        m.risky, m.young, m.unverified = inp.risky, inp.young, inp.unverified
        m.suspicious = _suspicious(inp.young, inp.unverified, inp.risky)
        m.requests = inp.requests  # the latest 5-minute view
        m.completion_tokens = inp.completion_tokens
        m.first_ts = min(m.first_ts, inp.first_ts)
        m.last_ts = max(m.last_ts, inp.last_ts)
        m.created_at = inp.created_at

    def tick(self, index: int) -> list[Alert]:
        """Bucket ``index`` is closed everywhere: maybe regroup, then emit what changed."""
        out: list[Alert] = []
        if (index + 1) % self.every == 0:
            self._expire(index)
            for comp, keys in self._components():
                out.extend(self._judge(comp, keys, index))
        for camp in self.campaigns:
            if camp.resolved_at is None and index - camp.last_active >= self.resolve_after:
                camp.resolved_at = index
                out.append(self._alert(camp, "resolved", index))
        return out

    # --- internals --------------------------------------------------------------------
    def _expire(self, index: int) -> None:
        horizon = index - self.window
        for key in [k for k, accts in self._links.items() if min(accts.values()) <= horizon]:
            accts = self._links[key]
            for a in [a for a, last in accts.items() if last <= horizon]:
                del accts[a]
            if not accts:
                del self._links[key]
        for a in [a for a, m in self._members.items() if m.last <= horizon]:
            if not any(a in c.members and c.resolved_at is None for c in self.campaigns):
                del self._members[a]

    def _components(self) -> list[tuple[list[str], set[tuple[str, str]]]]:
        """Connected components over accounts linked by a key shared by 2+ accounts."""
        parent: dict[str, str] = {}

        def find(a: str) -> str:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        shared = {k: sorted(v) for k, v in self._links.items() if len(v) >= 2}
        for accts in shared.values():
            for a in accts:
                parent.setdefault(a, a)
            root = find(accts[0])
            for a in accts[1:]:
                ra = find(a)
                if ra != root:
                    parent[max(ra, root)] = min(ra, root)
                    root = min(ra, root)
        groups: dict[str, list[str]] = defaultdict(list)
        for a in parent:
            groups[find(a)].append(a)
        keys_of: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for k, accts in shared.items():
            keys_of[find(accts[0])].add(k)
        return [(sorted(g), keys_of[r]) for r, g in sorted(groups.items())]

    def _judge(self, comp: list[str], keys: set, index: int) -> list[Alert]:
        members = [self._members[a] for a in comp if a in self._members]
        orgs = {m.org for m in members}
        if len(orgs) < self.min_orgs:
            return []
        suspicious = sum(m.suspicious for m in members) / len(members)
        if suspicious < self.suspicious_share:
            return []
        if not any(k[0] in STRONG for k in keys) and (self.cohort(members) < self.cohort_share):
            return []  # infrastructure alone: only a creation cohort makes it a campaign
        active = max(m.last for m in members)
        camp = next((c for c in self.campaigns if c.members & set(comp)), None)
        if camp is None:
            camp = _Campaign(
                alert_id=stable_id("campaign", *comp[:3], str(index)),
                opened=index,
                members=set(comp),
                reported=len(comp),
                last_active=active,
                severity=_severity(len(orgs)),
                keys=set(keys),
            )
            self.campaigns.append(camp)
            return [self._alert(camp, "open", index)]
        camp.last_active = max(camp.last_active, active)
        camp.keys |= keys
        grew = set(comp) - camp.members
        camp.members |= grew
        reopened = camp.resolved_at is not None
        camp.resolved_at = None
        sev = _severity(len({self._members[a].org for a in camp.members if a in self._members}))
        rose = _SEVERITIES.index(sev) > _SEVERITIES.index(camp.severity)
        camp.severity = max(sev, camp.severity, key=_SEVERITIES.index)
        big_growth = len(camp.members) >= camp.reported + max(self.min_orgs, camp.reported // 4)
        if reopened or rose or big_growth:
            camp.reported = len(camp.members)
            return [self._alert(camp, "update", index)]
        return []

    def cohort(self, members: list[_Member]) -> float:
        """Share of ``members`` created within ``cohort_days`` of their median creation
        time (unknown creation times count as outside)."""
        created = sorted(m.created_at for m in members if m.created_at is not None)
        if not created:
            return 0.0
        mid = created[len(created) // 2]
        near = sum(abs(c - mid) <= self.cohort_days * _DAY for c in created)
        return near / len(members)

    def _alert(self, camp: _Campaign, status: str, index: int) -> Alert:
        members = [self._members[a] for a in sorted(camp.members) if a in self._members]
        n = max(1, len(members))
        templates = sum(1 for k in camp.keys if k[0] == "template")
        payments = sum(1 for k in camp.keys if k[0] == "payment")
        infra = sum(1 for k in camp.keys if k[0] == "infra")
        reasons = [
            Reason("member_accounts", float(len(camp.members)), 0.0, float(len(camp.members))),
            Reason("shared_templates", float(templates), 0.0, float(templates)),
            Reason("shared_infrastructure", float(infra), 0.0, float(infra)),
            Reason("creation_cohort_share", self.cohort(members), 0.0, 0.0),
            Reason("young_share", sum(m.young for m in members) / n, 0.0, 0.0),
            Reason("unverified_share", sum(m.unverified for m in members) / n, 0.0, 0.0),
            Reason("risky_network_share", sum(m.risky for m in members) / n, 0.0, 0.0),
        ]
        end = float((index + 1) * self.bucket_seconds)
        return Alert(
            alert_id=camp.alert_id,
            kind="campaign",
            status=status,
            account_ids=sorted(camp.members),
            severity=camp.severity,
            score=float(len({m.org for m in members})),
            detector=DETECTOR,
            reasons=reasons,
            window_start=float((camp.opened + 1) * self.bucket_seconds) - self.window * 60.0,
            window_end=end,
            first_event_ts=min((m.first_ts for m in members), default=end),
            last_event_ts=max((m.last_ts for m in members), default=end),
            evidence={
                "members": len(camp.members),
                "shared_templates": templates,
                "shared_payment_fingerprints": payments,
                "shared_infrastructure": infra,
                "requests_last_5m": sum(m.requests for m in members),
                "completion_tokens_last_5m": sum(m.completion_tokens for m in members),
            },
            emitted_at=end,
            context={"opened_bucket_end": float((camp.opened + 1) * self.bucket_seconds)},
        )


_SEVERITIES = ("low", "medium", "high", "critical")


def _severity(orgs: int) -> str:
    return "critical" if orgs >= 100 else "high" if orgs >= 20 else "medium"
