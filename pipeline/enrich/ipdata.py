"""IP -> ASN number and organisation, from ip-location-db's ``asn`` data set.

Source: the npm package ``@ip-location-db/asn`` (RouteViews + the five RIRs + DB-IP
IP-to-ASN Lite, merged by ip-location-db; CC BY 4.0; data of 2026-06-17 for the pinned
version). ``xwatch ipdata install`` fetches it with ``npm pack`` from the npm registry,
keeps its licence files, and compiles the numeric CSVs into one compact file:

* a JSON header line (format, source, version, row counts, the organisation names);
* then raw little-endian arrays: IPv4 starts/ends (uint32), IPv6 starts/ends as high and
  low uint64 halves, and per row the ASN (uint32) and an index into the names.

About 10 MB on disk and in memory for ~515k ranges; it loads in well under a second and a
lookup is one bisect. No code is ever loaded from the file (it is not a pickle).

The upstream README warns that the npm-published data has known errors and that npm
updates are being wound down in favour of release downloads. The spot checks in the test
suite (Google, Amazon, Microsoft, a Tor exit range) hold for the pinned version; operators
who license MaxMind data should point ``XWATCH_MMDB_ASN`` at GeoLite2-ASN instead, which
takes precedence.
"""

from __future__ import annotations

import bisect
import csv
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from array import array
from pathlib import Path

import orjson

PACKAGE = "@ip-location-db/asn"
VERSION = "2.3.2026061719"
FILE_NAME = "asn-v1.bin"
_FORMAT = "xwatch-asn-v1"
_LICENCES = ("DBIP-LICENSE", "NRO_LICENSE", "ROUTEVIEWS-LICENSE", "MODIFICATIONS", "README.md")


class IpDataError(RuntimeError):
    """The ASN data could not be installed or read."""


def range_find_py(starts, ends, value: int) -> int:
    """The index ``i`` of the range ``starts[i] <= value <= ends[i]`` of sorted,
    non-overlapping ranges, or -1: the Python reference of ``_hot.range_find``, which
    searches arrays without making a Python int of each item it compares (a cold address
    lookup searches two tables of up to half a million ranges; ``tests/unit/test_hot.py``
    compares the two)."""
    i = bisect.bisect_right(starts, value) - 1
    return i if i >= 0 and value <= ends[i] else -1


def ragged_blocks(starts: array, ends: array) -> set[int]:
    """The /24 blocks (``value >> 8``) inside which one of these sorted, non-overlapping
    IPv4 ranges starts or ends: a start that is not a multiple of 256, or an end that is
    not one less. In every other /24, all addresses fall in one range, or all in none, so
    a lookup of any of them stands for the whole /24.

    Only the low byte of each value matters, so the columns' low bytes are cut out of
    their buffers and searched by ``re`` for the few that are not 0 (starts) or 255
    (ends): the ASN table's 412k ranges take milliseconds, not a Python loop's 60 ms.

    >>> sorted(ragged_blocks(array("I", [256, 1024, 1536]), array("I", [511, 1100, 2047])))
    [4]
    """

    def low_bytes(column: array) -> bytes:
        size = column.itemsize
        return column.tobytes()[0 if sys.byteorder == "little" else size - 1 :: size]

    ragged = {starts[m.start()] >> 8 for m in re.finditer(rb"[^\x00]", low_bytes(starts))}
    ragged.update(ends[m.start()] >> 8 for m in re.finditer(rb"[^\xff]", low_bytes(ends)))
    return ragged


try:  # arrays of unsigned ints only (IPv4 columns); IPv6 columns are lists of ints
    from pipeline._hot import range_find as find_in_arrays
except ImportError:  # installed without a C compiler
    find_in_arrays = range_find_py


class AsnTable:
    """Sorted, non-overlapping ranges -> (ASN, organisation).

    >>> t = AsnTable.from_rows([(16777216, 16777471, 13335, "Cloudflare, Inc.")], [], {})
    >>> t.lookup(16777217, 4)
    (13335, 'Cloudflare, Inc.')
    >>> t.lookup(16777472, 4) is None
    True
    """

    __slots__ = ("_orgs", "_v4", "_v6", "meta")

    def __init__(
        self,
        v4: tuple[array, array, array, array],
        v6: tuple[list[int], list[int], array, array],
        orgs: list[str],
        meta: dict,
    ) -> None:
        self._v4 = v4
        self._v6 = v6
        self._orgs = orgs
        self.meta = meta

    @classmethod
    def from_rows(
        cls,
        v4_rows: list[tuple[int, int, int, str]],
        v6_rows: list[tuple[int, int, int, str]],
        meta: dict,
    ) -> AsnTable:
        orgs: list[str] = []
        index: dict[str, int] = {}

        def org_id(name: str) -> int:
            i = index.get(name)
            if i is None:
                i = index[name] = len(orgs)
                orgs.append(name)
            return i

        v4_rows = sorted(v4_rows)
        v6_rows = sorted(v6_rows)
        v4 = (
            array("I", (r[0] for r in v4_rows)),
            array("I", (r[1] for r in v4_rows)),
            array("I", (r[2] for r in v4_rows)),
            array("I", (org_id(r[3]) for r in v4_rows)),
        )
        v6 = (
            [r[0] for r in v6_rows],
            [r[1] for r in v6_rows],
            array("I", (r[2] for r in v6_rows)),
            array("I", (org_id(r[3]) for r in v6_rows)),
        )
        return cls(v4, v6, orgs, meta)

    def lookup(self, value: int, version: int) -> tuple[int, str] | None:
        if version == 4:
            starts, ends, asns, orgs = self._v4
            i = find_in_arrays(starts, ends, value)
        else:
            starts, ends, asns, orgs = self._v6
            i = range_find_py(starts, ends, value)
        if i < 0:
            return None
        return asns[i], self._orgs[orgs[i]]

    def ragged_v4(self) -> set[int]:
        """:func:`ragged_blocks` of the IPv4 ranges."""
        return ragged_blocks(self._v4[0], self._v4[1])

    def __len__(self) -> int:
        return len(self._v4[0]) + len(self._v6[0])

    # --- file format ------------------------------------------------------------------
    def save(self, path: Path) -> None:
        v4s, v4e, v4a, v4o = self._v4
        v6s, v6e, v6a, v6o = self._v6
        mask = (1 << 64) - 1
        blobs = [
            v4s,
            v4e,
            v4a,
            v4o,
            array("Q", (x >> 64 for x in v6s)),
            array("Q", (x & mask for x in v6s)),
            array("Q", (x >> 64 for x in v6e)),
            array("Q", (x & mask for x in v6e)),
            v6a,
            v6o,
        ]
        if sys.byteorder != "little":  # pragma: no cover - the file is little-endian
            for b in blobs:
                b.byteswap()
        header = {
            "format": _FORMAT,
            "meta": self.meta,
            "v4": len(v4s),
            "v6": len(v6s),
            "orgs": self._orgs,
        }
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(orjson.dumps(header) + b"\n")
            for b in blobs:
                fh.write(b.tobytes())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> AsnTable:
        try:
            with open(path, "rb") as fh:
                header = orjson.loads(fh.readline())
                if header.get("format") != _FORMAT:
                    raise IpDataError(f"{path}: not an {_FORMAT} file")
                n4, n6 = header["v4"], header["v6"]

                def read(code: str, n: int) -> array:
                    a = array(code)
                    a.frombytes(fh.read(a.itemsize * n))
                    if len(a) != n:
                        raise IpDataError(f"{path}: truncated")
                    if sys.byteorder != "little":  # pragma: no cover
                        a.byteswap()
                    return a

                v4 = (read("I", n4), read("I", n4), read("I", n4), read("I", n4))
                s_hi, s_lo, e_hi, e_lo = (read("Q", n6) for _ in range(4))
                v6 = (
                    [h << 64 | lo for h, lo in zip(s_hi, s_lo, strict=True)],
                    [h << 64 | lo for h, lo in zip(e_hi, e_lo, strict=True)],
                    read("I", n6),
                    read("I", n6),
                )
        except (OSError, ValueError, KeyError) as exc:
            raise IpDataError(f"cannot read ASN data {path}: {exc}") from exc
        return cls(v4, v6, header["orgs"], header["meta"])


def _read_csv(path: Path) -> list[tuple[int, int, int, str]]:
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for rec in csv.reader(fh):
            if len(rec) >= 4 and rec[0].isdigit():
                rows.append((int(rec[0]), int(rec[1]), int(rec[2]), rec[3]))
    return rows


def compile_package(package_dir: Path, meta: dict) -> AsnTable:
    """Build the table from an unpacked ``@ip-location-db/asn`` package directory."""
    return AsnTable.from_rows(
        _read_csv(package_dir / "asn-ipv4-num.csv"),
        _read_csv(package_dir / "asn-ipv6-num.csv"),
        meta,
    )


def install(
    dest: Path, version: str = VERSION, npm: str | None = None, tarball: Path | None = None
) -> Path:
    """Fetch the package with ``npm pack`` (or take an already fetched ``tarball``), compile
    it into ``dest`` and keep its licence files."""
    npm = npm or shutil.which("npm")
    if tarball is None and not npm:
        raise IpDataError(
            "npm is needed to fetch the ASN data from the npm registry "
            f"({PACKAGE}); install Node.js/npm, or set XWATCH_MMDB_ASN to a GeoLite2-ASN file"
        )
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if tarball is None:
            proc = subprocess.run(
                [npm, "pack", f"{PACKAGE}@{version}", "--pack-destination", tmp, "--silent"],
                capture_output=True,
                text=True,
                check=False,
            )
            found = list(Path(tmp).glob("*.tgz"))
            if proc.returncode != 0 or not found:
                raise IpDataError(
                    f"npm pack {PACKAGE}@{version} failed: {proc.stderr.strip()[-500:]}"
                )
            tarball = found[0]
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        pkg = Path(tmp) / "package"
        table = compile_package(pkg, {"source": f"{PACKAGE}@{version}", "licence": "CC BY 4.0"})
        for name in _LICENCES:
            if (pkg / name).exists():
                shutil.copy(pkg / name, dest / name)
    path = dest / FILE_NAME
    table.save(path)
    return path
