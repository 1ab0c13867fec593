"""Network metadata from real data: the spot checks, reserved ranges, operator overrides."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.enrich.ipdata import range_find_py
from pipeline.enrich.network import (
    NetworkEnricher,
    Overrides,
    address_key,
    is_reserved,
    network_prefix,
    parse,
)
from pipeline.flow import Flow
from pipeline.records import IntelRecord
from pipeline.reference import apply_account, apply_intel
from pipeline.settings import Settings

SPOT_CHECKS = [
    ("8.8.8.8", 15169, "Google", "hosting"),
    ("52.95.110.1", 16509, "Amazon", "hosting"),
    ("20.1.1.1", 8075, "Microsoft", "hosting"),
    ("185.220.101.1", None, None, "tor"),
]


@pytest.mark.parametrize(("ip", "asn", "org", "kind"), SPOT_CHECKS)
def test_spot_checks(network: NetworkEnricher, ip: str, asn, org, kind: str) -> None:
    assert network.has_asn_numbers, "ASN table missing: run `xwatch ipdata install`"
    info = network.lookup(ip)
    assert info.kind == kind
    if asn is not None:
        assert info.asn == asn
        assert org in info.as_org
    assert info.country


@pytest.mark.parametrize(
    "ip", ["10.1.2.3", "127.0.0.1", "192.0.2.7", "2001:db8::1", "::1", "fe80::1", "169.254.1.1"]
)
def test_reserved_ranges(network: NetworkEnricher, ip: str) -> None:
    info = network.lookup(ip)
    assert info.kind == "reserved"
    assert info.asn is None


def test_residential_and_prefixes(network: NetworkEnricher) -> None:
    info = network.lookup("73.15.2.3")
    assert info.kind == "residential_or_unknown"
    assert info.asn == 7922
    assert info.prefix == "73.15.2.0/24"
    assert network.lookup("2601:1c0::5").prefix == "2601:1c0::/48"
    assert network_prefix(*parse("2001:db8:1:2::1")) == "2001:db8:1::/48"


def test_cached_addresses_share_their_block_country_and_asn(network: NetworkEnricher) -> None:
    """Addresses of one block share its one NetworkInfo, and blocks of one country or ASN
    share that value's one object (memory per address, not a behaviour: bench core's
    address_cache part)."""
    net = NetworkEnricher(network._builtin, cache_size=8)
    a, b = net.lookup("73.15.2.3"), net.lookup("73.15.9.77")
    assert (a.asn, a.country) == (b.asn, b.country) == (7922, "US")
    assert a.asn is b.asn and a.country is b.country
    assert net._cache[address_key(*parse("73.15.2.3"))] is a
    assert net.lookup("73.15.2.200") is a and net.lookup("73.15.9.1") is b
    assert a.prefix == "73.15.2.0/24" and b.prefix == "73.15.9.0/24"
    for i in range(20):  # the sharing table stays bounded too, and lookups stay right
        assert net.lookup(f"73.{i}.3.1").prefix == f"73.{i}.3.0/24"
    assert len(net._blocks) <= 8


def test_override_longest_prefix_expiry_and_delete(network: NetworkEnricher) -> None:
    net = NetworkEnricher(network._builtin, cache_size=4)
    assert net.lookup("73.15.2.3").kind == "residential_or_unknown"
    net.overrides.put(IntelRecord("73.15.0.0/16", "proxy", "isp-proxy-pool"))
    net.overrides.put(IntelRecord("73.15.2.0/24", "vpn", "vendor-x", expires_at=1000.0))
    hit = net.lookup("73.15.2.3", at=999.0)
    assert (hit.kind, hit.label, hit.source, hit.asn) == ("vpn", "vendor-x", "override", 7922)
    assert net.lookup("73.15.2.3", at=1000.0).label == "isp-proxy-pool"  # expired: next prefix
    net.overrides.delete("73.15.0.0/16")
    assert net.lookup("73.15.2.3", at=2000.0).source == "builtin"
    net.overrides.put(IntelRecord("2601:1c0::/32", "hosting", "v6-dc"))
    assert net.lookup("2601:1c0::5").kind == "hosting"
    for i in range(20):  # the cache stays bounded
        net.lookup(f"73.15.3.{i}")
    assert len(net._cache) <= 4


def test_reference_records_apply_and_bad_ones_are_named(network: NetworkEnricher) -> None:
    flow = Flow(Settings.load(environ={}).detector, NetworkEnricher(network._builtin))
    rec = {"cidr": "203.0.113.0/24", "kind": "proxy", "label": "x"}
    assert apply_intel(flow, b"203.0.113.0/24", orjson.dumps(rec)) is None
    assert flow.network.lookup("203.0.113.9").kind == "proxy"
    assert apply_intel(flow, b"203.0.113.0/24", None) is None
    assert flow.network.lookup("203.0.113.9").kind == "reserved"
    assert "invalid_ip" in apply_intel(flow, b"k", orjson.dumps({**rec, "cidr": "nope"}))
    assert "out_of_range" in apply_intel(flow, b"k", orjson.dumps({**rec, "kind": "evil"}))
    assert "tombstone key" in apply_intel(flow, b"not-a-cidr", None)
    acct = {
        "account_id": "a1",
        "org_id": "o",
        "created_at": "2026-01-01T00:00:00Z",
        "tier": "pro",
        "country": "DE",
        "payment_verified": True,
    }
    assert apply_account(flow, 2, b"a1", orjson.dumps(acct)) is None
    assert flow.accounts.get("a1").tier == "pro"
    assert flow.accounts.drop_partition(2) == 1
    assert flow.accounts.get("a1") is None
    assert "wrong_type" in apply_account(flow, 0, b"a1", orjson.dumps({**acct, "tier": 5}))


def test_overrides_doctest_semantics() -> None:
    o = Overrides()
    assert not o
    o.put(IntelRecord("0.0.0.0/0", "hosting", "everything"))
    assert o.match(*parse("1.2.3.4"), at=0.0).label == "everything"
    assert o.match(*parse("::1"), at=0.0) is None


@settings(max_examples=3000, deadline=None)
@given(st.ip_addresses())
def test_reserved_table_covers_everything_python_calls_non_global(ip) -> None:
    """Everything ipaddress deems non-global or multicast is reserved for us too (the IANA
    table is a superset: it also holds ranges older Pythons still call global)."""
    if not ip.is_global or ip.is_multicast:
        assert is_reserved(ip.version, int(ip)), ip
    assert parse(str(ip)) == (ip.version, int(ip))


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([None, -1, 0, 1]))
def test_ipv4_tables_are_searched_in_c_as_their_own_lookups_search_them(
    network: NetworkEnricher, value: int, near_edge: int | None
) -> None:
    """A cold IPv4 lookup searches iporigin's columns and the ASN table's in C
    (find_in_arrays); the answers must be those of iporigin's find and of bisect, for any
    address and at the edges of iporigin's ranges (``near_edge``: that far from one)."""
    builtin = network._builtin
    assert builtin._v4 is not None, "iporigin's IPv4 columns are no longer arrays"
    if near_edge is not None:
        starts, ends = builtin._v4[:2]
        edges = starts if value % 2 else ends
        value = min(max(edges[value % len(edges)] + near_edge, 0), 2**32 - 1)
    assert builtin.origin(4, value) == builtin._ranges.find(value, 4)
    if builtin.asn is not None:
        starts, ends, asns, orgs = builtin.asn._v4
        i = range_find_py(starts, ends, value)
        want = None if i < 0 else (asns[i], builtin.asn._orgs[orgs[i]])
        assert builtin.asn.lookup(value, 4) == want


def _xwatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, check=False
    )


def test_enrich_command() -> None:
    out = _xwatch("enrich", "--ip", "8.8.8.8")
    assert out.returncode == 0, out.stderr
    doc = orjson.loads(out.stdout)
    assert {"asn", "as_org", "country", "kind"} <= doc.keys()
    assert (doc["asn"], doc["kind"]) == (15169, "hosting")
    bad = _xwatch("enrich", "--ip", "999.1.1.1")
    assert bad.returncode == 2
    assert "not an IPv4 or IPv6 address" in bad.stderr
