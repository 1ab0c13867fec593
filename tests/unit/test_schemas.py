"""Every schema is valid draft 2020-12, every example validates, and what the code
produces (alerts, dead letters, enriched records, network blocks) validates too."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest
from referencing import Registry, Resource

from pipeline import codec
from pipeline.records import Account, DeadLetter, Enriched, Source
from tests.conftest import SCHEMAS

EXAMPLES = SCHEMAS / "examples"
SCHEMA_OF = {
    "request-event": "request-event.v1.json",
    "account": "account.v1.json",
    "network-intel": "network-intel.v1.json",
    "alert": "alert.v1.json",
    "dead-letter": "dead-letter.v1.json",
    "network": "network.v1.json",
    "enriched": "enriched.v1.json",
    "campaign-digest": "campaign-digest.v1.json",
}


def _registry() -> Registry:
    resources = []
    for path in SCHEMAS.glob("*.json"):
        doc = json.loads(path.read_text())
        res = Resource.from_contents(doc)
        resources += [(doc["$id"], res), (path.name, res)]
    return Registry().with_resources(resources)


REGISTRY = _registry()


def validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator that asserts formats; date-time needs rfc3339-validator (test extra)."""
    assert "date-time" in jsonschema.FormatChecker().checkers, "pip install rfc3339-validator"
    schema = json.loads((SCHEMAS / SCHEMA_OF[name]).read_text())
    return jsonschema.Draft202012Validator(
        schema, registry=REGISTRY, format_checker=jsonschema.FormatChecker()
    )


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.json")), ids=lambda p: p.name)
def test_schema_is_valid_2020_12(path: Path) -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def _examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json"))


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    name = next(n for n in sorted(SCHEMA_OF, key=len, reverse=True) if path.name.startswith(n))
    validator(name).validate(json.loads(path.read_text()))


def test_every_schema_has_an_example() -> None:
    names = {p.name for p in _examples()}
    for name in SCHEMA_OF:
        assert any(n.startswith(name) for n in names), f"no example for {name}"


@pytest.mark.parametrize(
    "path", sorted((EXAMPLES / "invalid").glob("*.json")), ids=lambda p: p.name
)
def test_invalid_examples_rejected_by_schema_and_decoder(path: Path) -> None:
    raw = path.read_bytes()
    reason = path.name.split(".")[0]
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError:
        doc = None
    if doc is not None:
        assert not validator("request-event").is_valid(doc)
    result = codec.decode_request(raw)
    assert result.reason == reason, result


def test_valid_examples_decode() -> None:
    for path in EXAMPLES.glob("request-event.*.json"):
        ev = codec.decode_request(path.read_bytes())
        assert not hasattr(ev, "reason"), ev
        validator("request-event").validate(codec.request_to_dict(ev))
    acct = codec.account_from_dict(json.loads((EXAMPLES / "account.json").read_text()))
    assert isinstance(acct, Account)
    validator("account").validate(codec.account_to_dict(acct))
    intel = codec.intel_from_dict(json.loads((EXAMPLES / "network-intel.json").read_text()))
    validator("network-intel").validate(codec.intel_to_dict(intel))


def test_code_outputs_validate(network) -> None:
    from tests.unit.test_flow import run_simulation

    alerts, _ = run_simulation(seed=7, network=network)
    assert alerts, "the simulation should produce at least one alert"
    for alert in alerts:
        validator("alert").validate(orjson.loads(codec.encode_alert(alert)))
    dl = DeadLetter("invalid_ip", "ip is bad", Source("api.requests", 1, 7, 3), b"k", b"\xff\x00")
    validator("dead-letter").validate(orjson.loads(codec.encode_dead_letter(dl)))
    ev = codec.decode_request((EXAMPLES / "request-event.full.json").read_bytes())
    for ip in ("8.8.8.8", "10.1.2.3", "2001:db8::1", "185.220.101.1"):
        validator("network").validate(codec.network_to_dict(network.lookup(ip), ip))
    for account in (None, Account("a", "o", 0.0, "pro", "DE", True)):
        rec = Enriched(ev, account, network.lookup(ev.ip))
        validator("enriched").validate(codec.enriched_to_dict(rec))


def test_digests_validate_and_round_trip(network) -> None:
    from tests.unit.test_campaigns import _hydra_digests

    _, digests, _ = _hydra_digests(network)
    with_inputs = [d for d in digests if d.entries]
    assert with_inputs
    for d in digests[:50] + with_inputs[:50]:
        doc = orjson.loads(codec.encode_digest(d))
        validator("campaign-digest").validate(doc)
        assert codec.decode_digest(codec.encode_digest(d)) == d
    bad = codec.decode_digest(b'{"partition": 1, "through": 3, "entries": [[3, [{"x": 1}]]]}')
    assert bad.reason == "invalid_digest"
