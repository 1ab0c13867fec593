"""Benchmarks, run on demand (``xwatch bench``), never as timed tests.

Every figure is printed next to a floor measured in the same run on the same events (an
orjson decode-only loop), because these machines are shared and noisy: compare the
ratios, not the absolute numbers. Each measurement is the best of ``repeat`` runs.

Sections:

``enrich``
    Account + network enrichment of already-decoded events: warm (every address cached)
    and cold (a fresh cache over ``distinct`` distinct addresses, IPv4 and IPv6).
``core``
    The offline detection core over encoded events (decode, validate, enrich, windows,
    scoring, campaigns, alert policy), as replay runs it, on a heavy-tailed population;
    and the resident memory the core holds per active account, measured at two population
    sizes (the difference cancels fixed costs such as the IP data).
"""

from __future__ import annotations

import gc
import ipaddress
import os
import platform
import random
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from pipeline.codec import decode_request, encode_request
from pipeline.enrich.accounts import AccountDirectory
from pipeline.enrich.network import NetworkEnricher
from pipeline.flow import Flow, partition_for
from pipeline.records import Enriched, RequestEvent
from pipeline.settings import Settings
from pipeline.sim.scenarios import Simulation


@dataclass(slots=True)
class Figure:
    name: str
    events: int
    seconds: float

    @property
    def eps(self) -> float:
        return self.events / self.seconds


def best_of(
    repeat: int,
    n: int,
    name: str,
    run: Callable[[], None],
    prepare: Callable[[], None] | None = None,
) -> Figure:
    """Best of ``repeat`` timed calls of ``run``; ``prepare`` runs untimed before each."""
    times = []
    for _ in range(repeat):
        if prepare is not None:
            prepare()
        gc.collect()
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return Figure(name, n, min(times))


def _random_global_ip(rng: random.Random) -> str:
    while True:
        if rng.random() < 0.9:
            text = ".".join(str(rng.randint(1, 254)) for _ in range(4))
        else:
            text = (
                f"2{rng.randint(0x400, 0xA0F):03x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
            )
        if ipaddress.ip_address(text).is_global:  # a reserved address would skip the lookup
            return text


def sample_events(n: int, seed: int, distinct_ips: int | None = None) -> list[bytes]:
    """``n`` encoded events from the simulator; with ``distinct_ips``, addresses are replaced
    by that many distinct random global addresses (cold-cache workload)."""
    sim = Simulation(seed=seed, accounts=2000, duration=6 * 3600, rate=max(5.0, n / 21600))
    events: list[RequestEvent] = []
    for ev in sim.events():
        events.append(ev)
        if len(events) == n:
            break
    if distinct_ips:
        rng = random.Random(seed)
        pool = [_random_global_ip(rng) for _ in range(distinct_ips)]
        for i, ev in enumerate(events):
            ev.ip = pool[i % distinct_ips]
    return [encode_request(ev) for ev in events]


def bench_enrich(repeat: int = 3, n: int = 100_000, distinct: int = 100_000, seed: int = 7) -> dict:
    settings = Settings.load()
    base = NetworkEnricher.from_settings(settings.network)
    accounts = AccountDirectory()
    sim = Simulation(seed=seed, accounts=2000, duration=60, rate=1.0)
    for acct in sim.accounts():
        accounts.put(acct)

    def run_decode(raws: list[bytes]) -> Callable[[], None]:
        def run() -> None:
            loads = orjson.loads
            for raw in raws:
                loads(raw)

        return run

    def run_enrich(events: list[RequestEvent], net_factory) -> Callable[[], None]:
        def run() -> None:
            net = net_factory()
            lookup, get = net.lookup, accounts.get
            for ev in events:
                Enriched(ev, get(ev.account_id), lookup(ev.ip, ev.ts))

        return run

    warm_raw = sample_events(n, seed)
    warm_events = [decode_request(r) for r in warm_raw]
    cold_raw = sample_events(n, seed, distinct_ips=distinct)
    cold_events = [decode_request(r) for r in cold_raw]
    run_enrich(warm_events, lambda: base)()  # warm the cache

    def fresh() -> NetworkEnricher:
        return NetworkEnricher(base._builtin, base._mmdb, settings.network.cache_size)

    figures = [
        best_of(repeat, n, "orjson decode only (floor)", run_decode(warm_raw)),
        best_of(repeat, n, "enrich, warm cache", run_enrich(warm_events, lambda: base)),
        best_of(
            repeat, n, f"enrich, cold cache, {distinct:,} addresses", run_enrich(cold_events, fresh)
        ),
    ]
    floor = figures[0].eps
    return {
        "machine": machine(),
        "asn_table": base.has_asn_numbers,
        "figures": [
            {"name": f.name, "events": f.events, "eps": round(f.eps), "x_decode": f.eps / floor}
            for f in figures
        ],
        "enrich_warm_eps": round(figures[1].eps),
        "enrich_cold_eps": round(figures[2].eps),
        "decode_eps": round(floor),
    }


def _core_events(accounts: int, minutes: float, seed: int) -> list[tuple[bytes, bytes, int]]:
    """Encoded events of a heavy-tailed population, ~2 requests/min per account on average."""
    sim = Simulation(
        seed=seed, accounts=accounts, duration=minutes * 60, rate=accounts * 2.0 / 60, scenarios=()
    )
    out: list[tuple[bytes, bytes, int]] = []
    chunk: list[RequestEvent] = []
    for ev in sim.events():
        chunk.append(ev)
        if len(chunk) == 10_000:
            out.extend(_encoded(chunk))
            chunk = []
    out.extend(_encoded(chunk))
    return out, sim


def _encoded(events: list[RequestEvent]) -> list[tuple[bytes, bytes, int]]:
    """(key, value, partition). orjson's output objects each occupy ~4 KB whatever their
    length; joining and splitting makes exact-size copies, so a million pre-encoded events
    fit in memory (the worker never holds encoded events, so it is unaffected)."""
    if not events:
        return []
    raws = b"\n".join(encode_request(ev) for ev in events).split(b"\n")
    keys = [ev.account_id.encode() for ev in events]
    return [(k, raw, partition_for(k, 4)) for k, raw in zip(keys, raws, strict=True)]


def bench_core(
    repeat: int = 1,
    accounts: int = 100_000,
    minutes: float = 10,
    seed: int = 7,
    warm_minutes: float = 0.0,
    python_path: bool = False,
) -> dict:
    """``warm_minutes`` > 0 runs that much traffic through the core untimed first, so the
    timed minutes see a steady state (accounts with history, views every 5 minutes)
    rather than a cold start (every account new, views every minute while it is young).
    ``python_path`` also times the same core with the C hot path off (``native=False``),
    on the same events in the same run: the C path's gain as a ratio."""
    settings = Settings.load()
    network = NetworkEnricher.from_settings(settings.network)
    events, sim = _core_events(accounts, minutes + warm_minutes, seed)
    cut = _first_after(events, sim.start + warm_minutes * 60) if warm_minutes else 0
    warm, timed = events[:cut], events[cut:]
    raws = [raw for _, raw, _ in timed]

    def decode_only() -> None:
        loads = orjson.loads
        for raw in raws:
            loads(raw)

    holder: list[Flow] = []
    flows: list[Flow] = []

    native = [True]

    def prepare() -> None:
        flow = Flow(settings.detector, network, partitions={0, 1, 2, 3}, native=native[0])
        for acct in sim.accounts():
            flow.accounts.put(acct)
        for i, (key, raw, p) in enumerate(warm):
            flow.process(key, raw, p, i, "bench")
        flows.append(flow)

    def core() -> None:
        flow = flows.pop()
        for i, (key, raw, p) in enumerate(timed, start=len(warm)):
            flow.process(key, raw, p, i, "bench")
        holder[:] = [flow]

    floor = best_of(repeat, len(timed), "orjson decode only (floor)", decode_only)
    state = f", after {warm_minutes:g} warm minutes" if warm_minutes else ", cold start"
    live = best_of(repeat, len(timed), f"offline core, {accounts:,} accounts{state}", core, prepare)
    snapshot = _snapshot_cost(holder[0])
    holder.clear()
    figures = [floor, live]
    if python_path:
        native[0] = False
        name = f"offline core, Python path only{state}"
        figures.append(best_of(repeat, len(timed), name, core, prepare))
        holder.clear()
    memory = {
        str(n): _memory_per_account(settings, network, n, seed) for n in (accounts // 10, accounts)
    }
    return {
        "machine": machine(),
        "figures": [
            {"name": f.name, "events": f.events, "eps": round(f.eps), "x_decode": f.eps / floor.eps}
            for f in figures
        ],
        "offline_eps": round(live.eps),
        "decode_eps": round(floor.eps),
        "warm_minutes": warm_minutes,
        "snapshot": snapshot,
        "bytes_per_account": memory,
    }


def _snapshot_cost(flow: Flow) -> dict:
    """What checkpointing the core's state costs (pipeline.state.encode_snapshot, the
    worker's own encoder): bytes per account on the state topic, and seconds per 10k
    accounts during which a worker's agent pauses."""
    from pipeline.state import Snapshot, encode_snapshot

    accounts = sum(len(sh.windows.accounts) for sh in flow.shards.values())
    t = time.perf_counter()
    size = sum(
        len(value)
        for p, sh in flow.shards.items()
        for _, value in encode_snapshot(Snapshot(f"requests:{p}", sh.next_offset, 0, sh), 1)
    )
    seconds = time.perf_counter() - t
    return {
        "accounts": accounts,
        "bytes_per_account": round(size / max(1, accounts)),
        "seconds_per_10k_accounts": round(seconds * 10_000 / max(1, accounts), 3),
    }


def _first_after(events: list[tuple[bytes, bytes, int]], ts: float) -> int:
    """Index of the first encoded event at or after ``ts`` (events are in time order)."""
    for i, (_, raw, _) in enumerate(events):
        if decode_request(raw).ts >= ts:
            return i
    return len(events)


#: Where the core's memory goes, by the source file that allocated it (tracemalloc): the
#: address cache of the network enricher (bounded by ``network.cache_size``), the cohort
#: models (a fixed number per partition), and the per-account state (everything else:
#: objects the C hot path creates are charged to the Python line that called it).
_PARTS = (
    ("address_cache", ("/pipeline/enrich/",)),
    ("models", ("/river/", "/pipeline/detect/population.py")),  # river's or our copies
)


def _part(filename: str) -> str:
    for name, markers in _PARTS:
        if any(m in filename for m in markers):
            return name
    return "account_state"


def _memory_per_account(
    settings: Settings, network: NetworkEnricher, accounts: int, seed: int
) -> dict[str, int]:
    """Bytes of live Python objects per active account held by the core after 10 simulated
    minutes (tracemalloc: immune to the allocator reusing memory freed by earlier runs,
    which makes resident-size differences meaningless inside one process), in total and
    per part (:data:`_PARTS`)."""
    events, _ = _core_events(accounts, 10, seed + 1)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    flow = Flow(settings.detector, network, partitions={0, 1, 2, 3})
    for i, (key, raw, p) in enumerate(events):
        flow.process(key, raw, p, i, "bench")
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    parts = dict.fromkeys(["account_state", *(name for name, _ in _PARTS)], 0)
    for diff in after.compare_to(before, "filename"):
        parts[_part(diff.traceback[0].filename)] += diff.size_diff
    del before, after
    active = sum(len(sh.windows.accounts) for sh in flow.shards.values())
    per = max(1, active)
    return {
        "active_accounts": active,
        "bytes_per_account": round(sum(parts.values()) / per),
        **{f"{name}_bytes_per_account": round(size / per) for name, size in parts.items()},
    }


def machine() -> str:
    from pipeline.flow import NATIVE

    impl = f"{platform.python_implementation()} {platform.python_version()}"
    hot = "C hot path" if NATIVE else "Python hot path (pipeline._hot not built)"
    return f"{impl}, {platform.machine()}, {os.cpu_count()} CPUs, {hot}"


def print_table(result: dict) -> None:
    asn = result.get("asn_table")
    print(f"machine: {result['machine']}" + ("" if asn is None else f"; ASN table: {asn}"))
    print(f"{'measurement':56s} {'events/s':>12s} {'x decode-only':>14s}")
    for f in result["figures"]:
        print(f"{f['name']:56s} {f['eps']:>12,d} {f['x_decode']:>14.2f}")
    for m in (result.get("bytes_per_account") or {}).values():
        parts = ", ".join(
            f"{name} {m[f'{name}_bytes_per_account']:,}"
            for name in ("account_state", *(n for n, _ in _PARTS))
            if f"{name}_bytes_per_account" in m
        )
        print(
            f"memory held per active account at {m['active_accounts']:,} active accounts: "
            f"{m['bytes_per_account']:,} bytes ({parts})"
        )
    snap = result.get("snapshot")
    if snap:
        print(
            f"state snapshot of {snap['accounts']:,} accounts: {snap['bytes_per_account']:,} "
            f"bytes per account, {snap['seconds_per_10k_accounts']:.2f} s per 10k accounts"
        )
