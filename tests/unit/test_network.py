"""Network metadata from real data: the spot checks, reserved ranges, operator overrides."""

from __future__ import annotations

import subprocess
import sys
from array import array

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.enrich.ipdata import AsnTable, ragged_blocks, range_find_py
from pipeline.enrich.network import (
    BuiltinNetworkData,
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


@st.composite
def block_tables(draw) -> tuple[array, array]:
    """Sorted, non-overlapping IPv4 ranges within the first 16 /24s, on and off their
    edges (single addresses and whole blocks among them)."""
    cuts = draw(
        st.lists(st.integers(0, 4095) | st.integers(0, 15).map(lambda b: b * 256), max_size=24)
    )
    bounds = sorted(set(cuts))
    starts, ends = [], []
    for lo, hi in zip(bounds[0::2], bounds[1::2], strict=False):
        starts.append(lo)
        ends.append(lo if draw(st.integers(0, 4)) == 0 else hi - 1 if hi % 256 == 0 else hi)
    return array(draw(st.sampled_from("IL")), starts), array("L", ends)


@settings(max_examples=400)
@given(block_tables())
def test_a_block_is_ragged_exactly_when_its_addresses_differ(table) -> None:
    """ragged_blocks names the /24s whose addresses are not all in one range, or all in
    none: the blocks whose lookups cannot stand for one another."""
    starts, ends = table
    for block in range(16):
        found = {range_find_py(starts, ends, v) for v in range(block * 256, block * 256 + 256)}
        assert (block in ragged_blocks(starts, ends)) == (len(found) > 1), (block, found)


def test_a_blocks_lookup_stands_for_its_addresses_only_where_the_tables_allow(
    network: NetworkEnricher,
) -> None:
    """An IPv4 address whose /24 and country were looked up before takes that lookup
    (BuiltinNetworkData.block_key): at the edges of iporigin's and the ASN table's ranges,
    each address looked up after another of its /24 gets what the tables say for itself."""
    builtin = network._builtin
    assert builtin._ragged, "no table has a range that starts or ends inside a /24"
    starts, ends = builtin._v4[:2]
    edges = [*starts[::97], *ends[::97]]
    if builtin.asn is not None:
        edges += [*builtin.asn._v4[0][::4001], *builtin.asn._v4[1][::4001]]
    net = NetworkEnricher(builtin)
    values = sorted({min(max(e + d, 0), 2**32 - 1) for e in edges for d in (-1, 0, 1)})
    shared = 0
    for value in values:
        for v in (value & ~255, value):  # the /24's first address first, then the edge
            text = f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"
            info = net.lookup(text)
            want = network.lookup(text) if is_reserved(4, v) else builtin.lookup(4, v, text)
            assert info == want, text
            shared += info is net._by_block.get(builtin.block_key(4, v, text) or (-1, None))
    assert shared > len(values) // 2  # most of these took a /24's lookup


def test_an_address_the_asn_table_does_not_know_keeps_its_own_organisation(monkeypatch) -> None:
    """Where the ASN table has no range, the organisation is geoip2fast's for the address
    itself: such a lookup never stands for its /24. Where it has one, it does."""
    table = AsnTable.from_rows([(parse("100.0.0.0")[1], parse("100.0.0.255")[1], 1, "One")], [], {})
    builtin = BuiltinNetworkData(table)
    monkeypatch.setattr(builtin, "_org_fallback", lambda text: f"org of {text}")
    net = NetworkEnricher(builtin)
    texts = ("100.0.1.1", "100.0.1.2", "100.0.0.1", "100.0.0.2")
    assert all(builtin.block_key(*parse(t), t) is not None for t in texts)
    a, b, c, d = (net.lookup(t) for t in texts)
    assert (a.asn, a.as_org, b.as_org) == (None, "org of 100.0.1.1", "org of 100.0.1.2")
    assert c is d and (c.asn, c.as_org) == (1, "One")


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
