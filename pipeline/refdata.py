"""Operator tools for the reference topics: load accounts, manage network overrides.

``load_accounts`` reads JSONL (one account object per line) or CSV (a header row with the
account fields; ``labels`` separated by ``;``), validates every row against the account
contract, publishes the good rows keyed by account id and reports each bad row with its
line number. ``put_intel``/``delete_intel`` write (or tombstone) one override keyed by its
normalised CIDR; ``list_intel`` folds the compacted topic into the current set.
"""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from kafka import KafkaProducer

from pipeline.codec import account_from_dict, account_to_dict, intel_from_dict, intel_to_dict
from pipeline.records import Account, IntelRecord, InvalidEvent
from pipeline.settings import Settings
from pipeline.subscribe import read_to_end


@dataclass(slots=True)
class LoadReport:
    loaded: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)


def _csv_row(row: dict[str, str]) -> dict:
    doc: dict = {k: v for k, v in row.items() if k is not None}
    verified = str(doc.get("payment_verified", "")).strip().lower()
    doc["payment_verified"] = {"true": True, "1": True, "false": False, "0": False}.get(
        verified, verified or None
    )
    for name in ("payment_fingerprint", "rate_limit_rpm"):
        if doc.get(name, "") == "":
            doc[name] = None
    if doc.get("rate_limit_rpm") is not None:
        with contextlib.suppress(ValueError):  # else left a string: the contract names it
            doc["rate_limit_rpm"] = int(doc["rate_limit_rpm"])
    doc["labels"] = [x for x in (doc.get("labels") or "").split(";") if x]
    return doc


def parse_accounts(data: bytes, fmt: str) -> tuple[list[Account], list[tuple[int, str]]]:
    """Parse JSONL or CSV account rows: (valid accounts, [(line, problem), ...])."""
    accounts: list[Account] = []
    problems: list[tuple[int, str]] = []
    if fmt == "csv":
        text = data.decode("utf-8-sig", errors="replace")
        reader = csv.DictReader(io.StringIO(text))
        rows = ((reader.line_num, _csv_row(r)) for r in reader)
    else:
        rows = _jsonl_rows(data, problems)
    for line, doc in rows:
        rec = account_from_dict(doc)
        if isinstance(rec, InvalidEvent):
            problems.append((line, f"{rec.reason}: {rec.detail}"))
        else:
            accounts.append(rec)
    problems.sort()
    return accounts, problems


def _jsonl_rows(data: bytes, problems: list[tuple[int, str]]):
    for n, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            yield n, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            problems.append((n, f"invalid_json: {exc}"))


def load_accounts(settings: Settings, path: Path) -> LoadReport:
    fmt = "csv" if path.suffix.lower() == ".csv" else "jsonl"
    accounts, problems = parse_accounts(path.read_bytes(), fmt)
    topic = settings.topics.name("accounts")
    producer = KafkaProducer(linger_ms=20, **settings.kafka.client_kwargs())
    try:
        for acct in accounts:
            producer.send(
                topic, key=acct.account_id.encode(), value=orjson.dumps(account_to_dict(acct))
            )
        producer.flush()
    finally:
        producer.close()
    return LoadReport(len(accounts), problems)


def put_intel(settings: Settings, doc: dict) -> IntelRecord | InvalidEvent:
    rec = intel_from_dict(doc)
    if isinstance(rec, InvalidEvent):
        return rec
    _send(settings, rec.cidr.encode(), orjson.dumps(intel_to_dict(rec)))
    return rec


def delete_intel(settings: Settings, cidr: str) -> str | InvalidEvent:
    rec = intel_from_dict({"cidr": cidr, "kind": "reserved", "label": ""})
    if isinstance(rec, InvalidEvent):
        return rec
    _send(settings, rec.cidr.encode(), None)
    return rec.cidr


def _send(settings: Settings, key: bytes, value: bytes | None) -> None:
    producer = KafkaProducer(**settings.kafka.client_kwargs())
    try:
        producer.send(settings.topics.name("intel"), key=key, value=value).get(timeout=30)
    finally:
        producer.close()


def list_intel(settings: Settings) -> list[IntelRecord]:
    """The current overrides: the compacted topic folded by key (tombstones delete)."""
    current: dict[bytes, IntelRecord] = {}
    for m in read_to_end(settings, settings.topics.name("intel")):
        if m.value is None:
            current.pop(m.key, None)
            continue
        try:
            rec = intel_from_dict(orjson.loads(m.value))
        except orjson.JSONDecodeError:
            continue
        if isinstance(rec, IntelRecord):
            current[m.key] = rec
    return sorted(current.values(), key=lambda r: r.cidr)
