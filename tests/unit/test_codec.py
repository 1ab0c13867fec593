"""The decoder is an exact, fast mirror of schemas/request-event.v1.json, and never raises."""

from __future__ import annotations

import json

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import codec
from pipeline.records import InvalidEvent, RequestEvent
from tests.conftest import SCHEMAS
from tests.unit.test_schemas import validator

VALID = json.loads((SCHEMAS / "examples" / "request-event.full.json").read_text())
SCHEMA = validator("request-event")

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=50),
    st.sampled_from(
        [
            "2026-11-02T08:00:00Z",
            "0000-00-00T00:00:00Z",
            "2026-02-30T08:00:00Z",
            "2026-12-31T23:59:60Z",
            "9999-12-31T23:59:59.999999999Z",
            "2026-11-02T08:00:00.123456789+00:00",
            "2026-13-02T08:00:00Z",
            "2026-11-02T08:00:00+01:00",
            "1.2.3.4",
            "::1",
            "fe80::1%eth0",
            "999.1.1.1",
            "x" * 600,
            "",
        ]
    ),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=2),
)


@st.composite
def mutated_events(draw) -> dict:
    """A valid event with a few fields replaced, removed or added."""
    doc = dict(VALID)
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from([*sorted(VALID), "extra"]))
        if draw(st.booleans()):
            doc.pop(name, None)
        else:
            doc[name] = draw(values)
    return doc


@settings(max_examples=600, deadline=None)
@given(mutated_events())
def test_decoder_accepts_exactly_what_the_schema_accepts(doc: dict) -> None:
    result = codec.decode_request(orjson.dumps(doc))
    assert isinstance(result, RequestEvent) == SCHEMA.is_valid(doc), (doc, result)


@settings(max_examples=600, deadline=None)
@given(mutated_events())
def test_fast_path_agrees_with_the_detailed_validator(doc: dict) -> None:
    fast = codec._fast_request(doc)
    if fast is not None:
        assert fast == codec.checked_request(doc)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    result = codec.decode_request(raw)
    assert isinstance(result, RequestEvent | InvalidEvent)
    if isinstance(result, InvalidEvent):
        assert result.reason in codec.REASONS and result.detail


def test_round_trip_and_unknown_fields_dropped() -> None:
    ev = codec.decode_request(orjson.dumps({**VALID, "prompt": "never stored"}))
    assert isinstance(ev, RequestEvent)
    out = codec.request_to_dict(ev)
    assert "prompt" not in out
    assert codec.decode_request(orjson.dumps(out)) == ev


def test_ip_is_normalised() -> None:
    ev = codec.decode_request(orjson.dumps({**VALID, "ip": "2001:0DB8:0000::0001"}))
    assert ev.ip == "2001:db8::1"


def test_reasons_are_specific() -> None:
    cases = {
        b"": "empty_value",
        b"{" * 10: "invalid_json",
        b"\xff\xfe": "invalid_json",
        b"42": "not_an_object",
        b"x" * (codec.MAX_EVENT_BYTES + 1): "too_large",
        orjson.dumps({**VALID, "status": True}): "wrong_type",
        orjson.dumps({**VALID, "prompt_tokens": 10**12}): "out_of_range",
        orjson.dumps({**VALID, "ts": "2026-11-02T08:00:00+02:00"}): "invalid_timestamp",
        # a request's time is within 2000-2099 (window indices fit the core's tables)
        orjson.dumps({**VALID, "ts": "1999-12-31T23:59:59Z"}): "invalid_timestamp",
        orjson.dumps({**VALID, "ts": "2100-01-01T00:00:00Z"}): "invalid_timestamp",
        orjson.dumps({k: v for k, v in VALID.items() if k != "model"}): "missing_field",
    }
    for raw, reason in cases.items():
        assert codec.decode_request(raw).reason == reason, raw[:60]


def test_format_ts_round_trips() -> None:
    ts = codec.parse_ts("2026-11-02T08:00:01.250Z")
    assert codec.format_ts(ts) == "2026-11-02T08:00:01.250Z"
