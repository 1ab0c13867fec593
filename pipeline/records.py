"""Typed records that flow through the core. Plain slotted dataclasses, no behaviour.

Wire formats (JSON) are defined by the schemas in ``schemas/`` and produced/consumed by
:mod:`pipeline.codec`; these classes are what the core sees after decoding. Times are
float seconds since the Unix epoch (UTC), always taken from the events themselves.

No record ever carries prompt or completion text: only counts and upstream fingerprints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEMA_VERSION = 1

#: Network kinds, from most to least specific. ``residential_or_unknown`` is the honest
#: name for "no data source says otherwise".
NETWORK_KINDS = ("tor", "vpn", "proxy", "hosting", "bot", "reserved", "residential_or_unknown")
#: Kinds that hide who is behind the request or run from rented machines.
RISKY_KINDS = frozenset({"tor", "vpn", "proxy", "hosting"})


@dataclass(slots=True)
class RequestEvent:
    """One API request, as validated from ``api.requests`` (schemas/request-event.json)."""

    event_id: str
    ts: float
    account_id: str
    api_key_id: str
    ip: str
    user_agent: str
    endpoint: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    status: int
    latency_ms: float
    org_id: str | None = None
    prompt_fingerprint: str | None = None
    request_bytes: int | None = None
    response_bytes: int | None = None


@dataclass(slots=True)
class Account:
    """An account record from the compacted ``accounts`` topic (schemas/account.json)."""

    account_id: str
    org_id: str
    created_at: float
    tier: str
    country: str
    payment_verified: bool
    payment_fingerprint: str | None = None
    rate_limit_rpm: int | None = None
    labels: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True)
class NetworkInfo:
    """What is known about an IP address's network (with the address itself, the
    ``network`` block of an enriched record: :func:`pipeline.codec.network_to_dict`).

    It holds no address: every address with the same facts (kind, ASN, country, ...,
    down to the /24 or /48 prefix) shares one object, which is what keeps the enricher's
    cache of a hundred thousand addresses to a string and a dict slot per address.
    Frozen, so hashable: the enricher interns blocks by value.
    """

    kind: str
    asn: int | None = None
    as_org: str | None = None
    country: str | None = None
    provider: str | None = None
    source: str = "builtin"
    label: str | None = None
    prefix: str | None = None  # the /24 (IPv4) or /48 (IPv6) the address belongs to


@dataclass(slots=True, frozen=True)
class IntelRecord:
    """An operator override from the compacted ``network.intel`` topic (key = CIDR)."""

    cidr: str
    kind: str
    label: str
    note: str = ""
    expires_at: float | None = None


@dataclass(slots=True)
class Enriched:
    """A request plus its account (None = no record yet: ``unknown``) and network blocks."""

    event: RequestEvent
    account: Account | None
    network: NetworkInfo


@dataclass(slots=True, frozen=True)
class Reason:
    """One contributing feature: what was observed against what the baseline expects."""

    feature: str
    observed: float
    baseline: float
    z: float


@dataclass(slots=True)
class Alert:
    """One alert record (schemas/alert.json). ``alert_id`` is stable per episode."""

    alert_id: str
    kind: str  # "account" | "campaign"
    status: str  # "open" | "update" | "resolved"
    account_ids: list[str]
    severity: str
    score: float
    detector: str
    reasons: list[Reason]
    window_start: float
    window_end: float
    first_event_ts: float
    last_event_ts: float
    evidence: dict[str, int]
    emitted_at: float  # event time (watermark) at emission: deterministic under replay
    context: dict[str, str | bool | float | None] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION


@dataclass(slots=True, frozen=True)
class Source:
    """Where a record came from: enough to find it again and to replay it."""

    topic: str
    partition: int
    offset: int
    line: int | None = None  # 1-based line inside a packed (NDJSON) message


@dataclass(slots=True, frozen=True)
class InvalidEvent:
    """A record that broke the contract. A value routed to the DLQ, never a log line.

    ``reason`` is a short machine code from :data:`pipeline.codec.REASONS`; ``detail`` says
    which field and why, for a person.
    """

    reason: str
    detail: str


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """A dead-letter record (schemas/dead-letter.json): the reason plus the original bytes."""

    reason: str
    detail: str
    source: Source
    key: bytes | None
    value: bytes | None
    schema_version: int = SCHEMA_VERSION
