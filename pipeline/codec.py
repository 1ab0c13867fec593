"""Wire format <-> records: orjson decoding plus contract validation, and encoders.

The validators here are hand-written mirrors of the JSON Schemas in ``schemas/`` because
they sit on the hot path (a generic schema validator costs 10-50x more per event). The
test-suite proves the mirror is exact: for generated documents, ``decode_request`` accepts
a document if and only if the JSON Schema does.

Contract of every ``decode_*``: it never raises on bad input. It returns a record, or an
:class:`~pipeline.records.InvalidEvent` whose ``reason`` is one of :data:`REASONS` and whose
``detail`` names the field.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson

from pipeline.detect.campaigns import CampaignInput, Digest
from pipeline.records import (
    NETWORK_KINDS,
    Account,
    Alert,
    DeadLetter,
    Enriched,
    IntelRecord,
    InvalidEvent,
    NetworkInfo,
    RequestEvent,
)

REASONS = (
    "invalid_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "invalid_timestamp",
    "invalid_ip",
    "timestamp_too_far_ahead",
    "duplicate_event",
    "empty_value",
    "too_large",
    "internal_error",
)

#: Largest single event accepted (bytes). Real request events are ~0.5 KB.
MAX_EVENT_BYTES = 64 * 1024

#: RFC 3339 in UTC, the same pattern as the schemas (no leap seconds, years 1000-9999);
#: datetime then rejects impossible dates (Feb 30), as the schemas' ``format: date-time``.
_TS_RE = re.compile(
    r"[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|\+00:00)"
)
#: A request's own time is narrower (years 2000-2099, schemas/request-event.v1.json): window
#: indices then fit the core's fixed-width integer tables for any bucket of a second or more.
_REQ_TS_RE = re.compile("20[0-9]{2}" + _TS_RE.pattern[len("[1-9][0-9]{3}") :])
_COUNTRY_RE = re.compile(r"[A-Z]{2}|--")

# (name, max length, min length) for required string fields of a request event.
_REQ_STR = (
    ("event_id", 128, 1),
    ("account_id", 128, 1),
    ("api_key_id", 128, 1),
    ("user_agent", 512, 0),
    ("endpoint", 128, 1),
    ("model", 128, 1),
)
# (name, minimum, maximum) for required integers.
_REQ_INT = (
    ("prompt_tokens", 0, 100_000_000),
    ("completion_tokens", 0, 100_000_000),
    ("status", 100, 599),
)
_OPT_STR = (("org_id", 128), ("prompt_fingerprint", 128))
_OPT_INT = (("request_bytes", 10_000_000_000), ("response_bytes", 10_000_000_000))


class _Bad(Exception):
    """Internal: carries an InvalidEvent out of nested checks."""

    def __init__(self, reason: str, detail: str) -> None:
        self.invalid = InvalidEvent(reason, detail)


def parse_ts(value: Any, name: str = "ts", pattern: re.Pattern = _TS_RE) -> float:
    """RFC 3339 UTC string -> epoch seconds. Raises _Bad with a named reason."""
    if not isinstance(value, str):
        raise _Bad("wrong_type", f"{name} must be an RFC 3339 string, got {_type(value)}")
    if len(value) > 40 or pattern.fullmatch(value) is None:
        years = "2000-2099" if pattern is _REQ_TS_RE else "1000-9999"
        raise _Bad(
            "invalid_timestamp",
            f"{name} must be RFC 3339 in UTC (…Z), years {years}, got {value[:40]!r}",
        )
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise _Bad("invalid_timestamp", f"{name} is not a real date/time: {value!r}") from None


def format_ts(ts: float) -> str:
    """Epoch seconds -> RFC 3339 UTC with millisecond precision (``…T12:00:00.000Z``)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@lru_cache(maxsize=262_144)
def normalize_ip(text: str) -> str | None:
    """Canonical text of an IPv4/IPv6 address, or None when it is not one. Cached.

    IPv6 zone ids (``fe80::1%eth0``) are rejected: they are local to a host and mean
    nothing for a client address (the schema's ``ipv6`` format rejects them too).
    """
    if "%" in text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _str(doc: dict, name: str, max_len: int, min_len: int) -> str:
    value = doc.get(name)
    if value is None:
        raise _Bad("missing_field", f"{name} is required")
    if type(value) is not str:
        raise _Bad("wrong_type", f"{name} must be a string, got {_type(value)}")
    if not min_len <= len(value) <= max_len:
        raise _Bad("out_of_range", f"{name} length must be {min_len}..{max_len}")
    return value


def _int(doc: dict, name: str, lo: int, hi: int) -> int:
    value = doc.get(name)
    if value is None:
        raise _Bad("missing_field", f"{name} is required")
    if type(value) is not int:  # bool is not an integer in JSON; 3.0 is (JSON Schema)
        if type(value) is float and value.is_integer():
            value = int(value)
        else:
            raise _Bad("wrong_type", f"{name} must be an integer, got {_type(value)}")
    if not lo <= value <= hi:
        raise _Bad("out_of_range", f"{name} must be in {lo}..{hi}, got {value}")
    return value


def _opt_str(doc: dict, name: str, max_len: int) -> str | None:
    value = doc.get(name)
    if value is None:
        return None
    if type(value) is not str:
        raise _Bad("wrong_type", f"{name} must be a string or null, got {_type(value)}")
    if len(value) > max_len:
        raise _Bad("out_of_range", f"{name} longer than {max_len}")
    return value


def _loads(raw: bytes) -> dict:
    if not raw:
        raise _Bad("empty_value", "the message value is empty")
    if len(raw) > MAX_EVENT_BYTES:
        raise _Bad("too_large", f"event of {len(raw)} bytes exceeds {MAX_EVENT_BYTES}")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Bad("invalid_json", f"not valid UTF-8 JSON: {str(exc)[:120]}") from None
    if type(doc) is not dict:
        raise _Bad("not_an_object", f"a JSON object is required, got {_type(doc)}")
    return doc


_SECONDS: dict[str, float] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch seconds (bounded)
_TS_TAIL_RE = re.compile(r"(\.[0-9]{1,9})?(Z|\+00:00)")  # what follows a cached head


def _fast_ts(value: str) -> float | None:
    """Epoch seconds of a well-formed request timestamp, cached per second; None otherwise.

    A head (``YYYY-MM-DDTHH:MM:SS``) in the cache has passed the full pattern and the
    calendar check before, so only the tail is matched again.
    """
    if len(value) > 40:
        return None
    head = value[:19]
    base = _SECONDS.get(head)
    if base is None:
        if _REQ_TS_RE.fullmatch(value) is None:
            return None
        try:
            base = datetime.fromisoformat(head + "+00:00").timestamp()
        except ValueError:
            return None
        if len(_SECONDS) > 100_000:
            _SECONDS.clear()
        _SECONDS[head] = base
    elif _TS_TAIL_RE.fullmatch(value, 19) is None:
        return None
    if len(value) > 20 and value[19] == ".":
        frac = value[20:].rstrip("Z").split("+", 1)[0]
        return base + int(frac[:6].ljust(6, "0")) / 1e6  # microseconds, as datetime does
    return base


_REQUIRED = (
    "event_id", "account_id", "api_key_id", "user_agent", "endpoint", "model", "ip", "ts",
    "prompt_tokens", "completion_tokens", "status", "latency_ms",
)  # fmt: skip
_required = itemgetter(*_REQUIRED)
_TYPES_INT_LATENCY = (str,) * 8 + (int,) * 4
_TYPES_FLOAT_LATENCY = (str,) * 8 + (int,) * 3 + (float,)


def _fast_request(doc: dict) -> RequestEvent | None:
    """The common case in one pass: a complete, valid event without optional surprises.

    One C-level fetch of the required fields and one comparison of their types; then the
    ranges. Returns None for anything unusual; the caller then runs the detailed
    validator, which names the reason. Equivalence with the schema is proven by the
    property tests.
    """
    try:
        values = _required(doc)
    except KeyError:
        return None
    types = tuple(map(type, values))
    if types != _TYPES_FLOAT_LATENCY and types != _TYPES_INT_LATENCY:
        return None
    event_id, account_id, key, ua, endpoint, model, ip_text, ts_text, pt, ct, status, lat = values
    if not (
        0 < len(event_id) <= 128
        and 0 < len(account_id) <= 128
        and 0 < len(key) <= 128
        and len(ua) <= 512
        and 0 < len(endpoint) <= 128
        and 0 < len(model) <= 128
        and 2 <= len(ip_text) <= 45
        and 0 <= pt <= 100_000_000
        and 0 <= ct <= 100_000_000
        and 100 <= status <= 599
        and 0 <= lat <= 86_400_000
    ):
        return None
    ip = normalize_ip(ip_text)
    ts = _fast_ts(ts_text)
    if ip is None or ts is None:
        return None
    if len(doc) == 12:  # no optional field
        org = fp = rq = rs = None
    else:
        g = doc.get
        org, fp, rq, rs = (
            g("org_id"),
            g("prompt_fingerprint"),
            g("request_bytes"),
            g("response_bytes"),
        )
        if not (
            (org is None or (type(org) is str and len(org) <= 128))
            and (fp is None or (type(fp) is str and len(fp) <= 128))
            and (rq is None or (type(rq) is int and 0 <= rq <= 10_000_000_000))
            and (rs is None or (type(rs) is int and 0 <= rs <= 10_000_000_000))
        ):
            return None
    return RequestEvent(
        event_id, ts, account_id, key, ip, ua, endpoint, model, pt, ct, status,
        float(lat), org, fp, rq, rs,
    )  # fmt: skip


def request_from_dict(doc: dict) -> RequestEvent | InvalidEvent:
    """Validate a decoded request event (schemas/request-event.v1.json)."""
    fast = _fast_request(doc)
    return fast if fast is not None else checked_request(doc)


def checked_request(doc: dict) -> RequestEvent | InvalidEvent:
    """The detailed validator: field by field, naming the first problem found."""
    try:
        for name, max_len, min_len in _REQ_STR:
            _str(doc, name, max_len, min_len)
        ints = [_int(doc, name, lo, hi) for name, lo, hi in _REQ_INT]
        ip = normalize_ip(_str(doc, "ip", 45, 2))
        if ip is None:
            raise _Bad("invalid_ip", f"ip is not an IPv4 or IPv6 address: {doc['ip'][:45]!r}")
        ts = parse_ts(doc.get("ts"), "ts", _REQ_TS_RE) if "ts" in doc else None
        if ts is None:
            raise _Bad("missing_field", "ts is required")
        latency = doc.get("latency_ms")
        if latency is None:
            raise _Bad("missing_field", "latency_ms is required")
        if type(latency) not in (int, float):
            raise _Bad("wrong_type", f"latency_ms must be a number, got {_type(latency)}")
        if not 0 <= latency <= 86_400_000:
            raise _Bad("out_of_range", "latency_ms must be in 0..86400000")
        opt_s = [_opt_str(doc, name, max_len) for name, max_len in _OPT_STR]
        opt_i: list[int | None] = []
        for name, hi in _OPT_INT:
            opt_i.append(None if doc.get(name) is None else _int(doc, name, 0, hi))
    except _Bad as bad:
        return bad.invalid
    return RequestEvent(
        doc["event_id"],
        ts,
        doc["account_id"],
        doc["api_key_id"],
        ip,
        doc["user_agent"],
        doc["endpoint"],
        doc["model"],
        ints[0],
        ints[1],
        ints[2],
        float(latency),
        opt_s[0],
        opt_s[1],
        opt_i[0],
        opt_i[1],
    )


def decode_request(raw: bytes) -> RequestEvent | InvalidEvent:
    """bytes -> RequestEvent, or InvalidEvent with the reason. Never raises."""
    try:
        doc = _loads(raw)
    except _Bad as bad:
        return bad.invalid
    return request_from_dict(doc)


def request_to_dict(ev: RequestEvent) -> dict[str, Any]:
    """The wire form of a request event (used by the simulator, tools and tests)."""
    doc: dict[str, Any] = {
        "event_id": ev.event_id,
        "ts": format_ts(ev.ts),
        "account_id": ev.account_id,
        "api_key_id": ev.api_key_id,
        "ip": ev.ip,
        "user_agent": ev.user_agent,
        "endpoint": ev.endpoint,
        "model": ev.model,
        "prompt_tokens": ev.prompt_tokens,
        "completion_tokens": ev.completion_tokens,
        "status": ev.status,
        "latency_ms": ev.latency_ms,
    }
    for name in ("org_id", "prompt_fingerprint", "request_bytes", "response_bytes"):
        value = getattr(ev, name)
        if value is not None:
            doc[name] = value
    return doc


def encode_request(ev: RequestEvent) -> bytes:
    return orjson.dumps(request_to_dict(ev))


# --- accounts -------------------------------------------------------------------------


def account_from_dict(doc: Any) -> Account | InvalidEvent:
    """Validate an account record (schemas/account.v1.json)."""
    try:
        if type(doc) is not dict:
            raise _Bad("not_an_object", f"a JSON object is required, got {_type(doc)}")
        account_id = _str(doc, "account_id", 128, 1)
        org_id = _str(doc, "org_id", 128, 0)
        created_at = parse_ts(doc.get("created_at"), "created_at")
        tier = _str(doc, "tier", 32, 1)
        country = _str(doc, "country", 2, 2)
        if _COUNTRY_RE.fullmatch(country) is None:
            raise _Bad("out_of_range", f"country must be ISO 3166-1 alpha-2, got {country!r}")
        verified = doc.get("payment_verified")
        if verified is None:
            raise _Bad("missing_field", "payment_verified is required")
        if type(verified) is not bool:
            raise _Bad("wrong_type", f"payment_verified must be a boolean, got {_type(verified)}")
        fingerprint = _opt_str(doc, "payment_fingerprint", 128)
        rpm = doc.get("rate_limit_rpm")
        if rpm is not None:
            rpm = _int(doc, "rate_limit_rpm", 0, 2**53)
        labels = doc.get("labels", [])
        if type(labels) is not list or not all(type(x) is str and len(x) <= 64 for x in labels):
            raise _Bad("wrong_type", "labels must be a list of strings (<= 64 chars)")
        if len(labels) > 32:
            raise _Bad("out_of_range", "at most 32 labels")
    except _Bad as bad:
        return bad.invalid
    return Account(
        account_id, org_id, created_at, tier, country, verified, fingerprint, rpm, tuple(labels)
    )


def account_to_dict(acct: Account) -> dict[str, Any]:
    return {
        "account_id": acct.account_id,
        "org_id": acct.org_id,
        "created_at": format_ts(acct.created_at),
        "tier": acct.tier,
        "country": acct.country,
        "payment_verified": acct.payment_verified,
        "payment_fingerprint": acct.payment_fingerprint,
        "rate_limit_rpm": acct.rate_limit_rpm,
        "labels": list(acct.labels),
    }


# --- network intel --------------------------------------------------------------------


def intel_from_dict(doc: Any) -> IntelRecord | InvalidEvent:
    """Validate an operator override (schemas/network-intel.v1.json); normalises the CIDR."""
    try:
        if type(doc) is not dict:
            raise _Bad("not_an_object", f"a JSON object is required, got {_type(doc)}")
        unknown = set(doc) - {"cidr", "kind", "label", "note", "expires_at"}
        if unknown:
            raise _Bad("wrong_type", f"unknown fields: {sorted(unknown)}")
        cidr = _str(doc, "cidr", 49, 3)
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise _Bad("invalid_ip", f"cidr is not an IP network: {cidr!r}") from None
        kind = _str(doc, "kind", 32, 1)
        if kind not in NETWORK_KINDS:
            raise _Bad("out_of_range", f"kind must be one of {', '.join(NETWORK_KINDS)}")
        label = _str(doc, "label", 128, 0)
        note = _opt_str(doc, "note", 1024) or ""
        expires = doc.get("expires_at")
        expires_at = None if expires is None else parse_ts(expires, "expires_at")
    except _Bad as bad:
        return bad.invalid
    return IntelRecord(str(net), kind, label, note, expires_at)


def intel_to_dict(rec: IntelRecord) -> dict[str, Any]:
    doc: dict[str, Any] = {"cidr": rec.cidr, "kind": rec.kind, "label": rec.label}
    if rec.note:
        doc["note"] = rec.note
    if rec.expires_at is not None:
        doc["expires_at"] = format_ts(rec.expires_at)
    return doc


# --- outputs --------------------------------------------------------------------------


def network_to_dict(net: NetworkInfo, ip: str) -> dict[str, Any]:
    """The ``network`` block (schemas/network.v1.json) of address ``ip``."""
    return {
        "ip": ip,
        "asn": net.asn,
        "as_org": net.as_org,
        "country": net.country,
        "kind": net.kind,
        "provider": net.provider,
        "source": net.source,
        "label": net.label,
        "prefix": net.prefix,
    }


def enriched_to_dict(rec: Enriched) -> dict[str, Any]:
    return {
        "event": request_to_dict(rec.event),
        "account": account_to_dict(rec.account) if rec.account else {"status": "unknown"},
        "network": network_to_dict(rec.network, rec.event.ip),
        "schema_version": 1,
    }


def encode_enriched(rec: Enriched) -> bytes:
    return orjson.dumps(enriched_to_dict(rec))


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "kind": alert.kind,
        "status": alert.status,
        "account_ids": alert.account_ids,
        "severity": alert.severity,
        "score": round(alert.score, 4),
        "detector": alert.detector,
        "reasons": [
            {
                "feature": r.feature,
                "observed": round(r.observed, 4),
                "baseline": round(r.baseline, 4),
                "z": round(r.z, 3),
            }
            for r in alert.reasons
        ],
        "window_start": format_ts(alert.window_start),
        "window_end": format_ts(alert.window_end),
        "first_event_ts": format_ts(alert.first_event_ts),
        "last_event_ts": format_ts(alert.last_event_ts),
        "evidence": alert.evidence,
        "context": alert.context,
        "schema_version": alert.schema_version,
        "emitted_at": format_ts(alert.emitted_at),
    }


def encode_alert(alert: Alert) -> bytes:
    """Alert -> JSON bytes with sorted keys: identical alerts are identical bytes."""
    return orjson.dumps(alert_to_dict(alert), option=orjson.OPT_SORT_KEYS)


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def dead_letter_to_dict(dl: DeadLetter) -> dict[str, Any]:
    src = dl.source
    return {
        "reason": dl.reason,
        "detail": dl.detail,
        "source": {
            "topic": src.topic,
            "partition": src.partition,
            "offset": src.offset,
            "line": src.line,
        },
        "key_b64": _b64(dl.key),
        "value_b64": _b64(dl.value),
        "schema_version": dl.schema_version,
    }


def encode_dead_letter(dl: DeadLetter) -> bytes:
    return orjson.dumps(dead_letter_to_dict(dl), option=orjson.OPT_SORT_KEYS)


def encode_digest(d: Digest) -> bytes:
    """Digest -> JSON bytes (schemas/campaign-digest.v1.json). Floats round-trip exactly."""
    return orjson.dumps(
        {"partition": d.partition, "through": d.through, "entries": d.entries, "schema_version": 1}
    )


def decode_digest(raw: bytes) -> Digest | InvalidEvent:
    """JSON bytes -> Digest, or the reason it is not one (the stage dead-letters it)."""
    try:
        doc = orjson.loads(raw)
        entries = [
            (int(index), [_campaign_input(d) for d in inputs]) for index, inputs in doc["entries"]
        ]
        return Digest(int(doc["partition"]), int(doc["through"]), entries)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return InvalidEvent("invalid_digest", f"{type(exc).__name__}: {str(exc)[:200]}")


def _campaign_input(d: dict) -> CampaignInput:
    d["keys"] = [(str(kind), str(value)) for kind, value in d["keys"]]
    return CampaignInput(**d)
