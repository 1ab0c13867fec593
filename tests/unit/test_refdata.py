"""Account files: bad rows reported with line numbers, good rows kept."""

from __future__ import annotations

from pipeline.refdata import parse_accounts

GOOD = (
    b'{"account_id": "a1", "org_id": "o1", "created_at": "2026-01-01T00:00:00Z", "tier": "pro",'
    b' "country": "DE", "payment_verified": true}'
)


def test_jsonl_rows_with_line_numbers() -> None:
    data = b"\n".join(
        [
            GOOD,
            b"",
            b'{"account_id": "a2"}',
            b"{not json",
            GOOD.replace(b"a1", b"a3").replace(b'"DE"', b'"Germany"'),
            GOOD.replace(b"a1", b"a4"),
        ]
    )
    accounts, problems = parse_accounts(data, "jsonl")
    assert [a.account_id for a in accounts] == ["a1", "a4"]
    assert [line for line, _ in problems] == [3, 4, 5]
    assert "missing_field" in problems[0][1]
    assert "invalid_json" in problems[1][1]
    assert "country" in problems[2][1]


def test_csv_rows() -> None:
    data = (
        b"account_id,org_id,created_at,tier,country,payment_verified,rate_limit_rpm,labels\n"
        b"a1,o1,2026-01-01T00:00:00Z,pro,DE,true,600,beta;eu\n"
        b"a2,o2,2026-01-01T00:00:00Z,free,US,maybe,,\n"
        b"a3,o3,2026-01-01T00:00:00Z,free,US,false,lots,\n"
        b"a4,o4,yesterday,free,US,false,,\n"
    )
    accounts, problems = parse_accounts(data, "csv")
    assert [(a.account_id, a.rate_limit_rpm, a.labels) for a in accounts] == [
        ("a1", 600, ("beta", "eu"))
    ]
    assert [line for line, _ in problems] == [3, 4, 5]
