"""The live benchmark (``xwatch bench live``): the worker next to its floors, in one run.

On one broker (the embedded Tansu unless ``--bootstrap`` names one), with the same events:

* the floors: raw aiokafka ``getmany`` consume, and a Faust agent that does nothing (one
  message per iteration, the floor the one-event worker is compared with; and once more
  in the worker's batches, to show what batching alone changes in Faust's cost);
* the live worker (``xwatch worker``: decode, validate, enrich, windows, scoring, alert
  policy, sends) on one-event-per-message traffic and on packed (NDJSON) messages;
* the offline core replaying the same events from a file;
* event-to-alert latency under a steady real-time load at half the measured single-event
  maximum: after a few minutes of history (replayed fast; the warm-up is shortened to 3
  minutes for this run), events carry ``ts`` = wall clock, twelve attack accounts start
  during the run, and an outside consumer times each alert against the moment its window
  could first close (``emitted_at`` + grace), i.e. the delay the pipeline adds;
* memory: resident set growth per active account of a process running the core over ten
  simulated minutes of 10k and of 100k accounts (a child process each, so that one
  measurement's heap does not hide in the next one's).

Throughputs are measured from the first record to the last one the consumer saw (workers
are started, and have joined their group, before the clock starts), so start-up costs are
excluded from every figure alike. Figures are single runs on a shared machine: read the
ratios, which compare measurements taken minutes apart on the same events.

Beside each timed Faust process's events/s, the CPU time it used over the same span, per
message (Linux only: read from ``/proc``): what the process itself costs, whatever the
broker and the benchmark took of the same cores. A process that kept one core busy has
events/s x CPU seconds per event ~ 1; one that waited (for the broker, or for a core)
has less, and then its CPU per message, not its rate, is its cost. CPU per message
still moves with the machine's speed, as rates do.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median_high

import orjson

from pipeline.bench import _core_events, machine
from pipeline.broker import LocalBroker, free_port
from pipeline.demo import start_worker, stop_process
from pipeline.metrics import scrape
from pipeline.settings import Settings
from pipeline.sim.publish import producer, publish_accounts
from pipeline.sim.scenarios import Simulation
from pipeline.topics import ensure_topics

#: How often a timed worker's counter is read. Each read is an HTTP request and a render of
#: every metric, inside the measured worker (the Faust no-op floor is never read): at
#: 20 reads a second (the interval until this round) that observer cost was part of the
#: worker's figure.
_RATE_POLL = 0.25


@dataclass(frozen=True, slots=True)
class Timed:
    """A timed consumer: messages per second, and CPU microseconds of its process per
    message over the same span (None where ``/proc`` cannot be read)."""

    eps: float
    cpu_us: float | None = None


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (``/proc/PID/stat``), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15


def _scoped(settings: Settings, bootstrap: str, tag: str, **extra: str) -> Settings:
    run = uuid.uuid4().hex[:8]
    return settings.with_overrides(
        {
            "kafka.bootstrap": bootstrap,
            "kafka.session_timeout_s": "6",
            "topics.prefix": f"bench-{run}-{tag}.",
            "app_id": f"xwatch-bench-{run}-{tag}",
            "web_port": str(free_port()),
            "web_bind": "127.0.0.1",
            "log_level": "warning",
            **extra,
        }
    )


@contextmanager
def bootstrap_and_events(
    settings: Settings, events: int, accounts: int, seed: int
) -> Iterator[tuple[str, list[tuple[bytes, bytes, int]], Simulation]]:
    """The broker to measure on (``kafka.bootstrap``, else an embedded one, stopped on exit)
    and ``events`` encoded events of ``accounts`` accounts, as ``bench core`` makes them."""
    broker = None
    bootstrap = settings.kafka.bootstrap
    if not bootstrap:
        broker = LocalBroker(settings.broker_bin).start()
        bootstrap = broker.bootstrap
    try:
        evs, sim = _core_events(accounts, max(1.0, events / (accounts * 2.0)), seed)
        yield bootstrap, evs[:events], sim
    finally:
        if broker is not None:
            broker.stop()


def _produce(settings: Settings, messages: list[tuple[bytes | None, bytes, int]], sim) -> None:
    prod = producer(settings)
    try:
        publish_accounts(settings, prod, sim)
        topic = settings.topics.name("requests")
        for key, value, partition in messages:
            prod.send(topic, key=key, value=value, partition=partition)
        prod.flush()
    finally:
        prod.close()


def _packed(events: list[tuple[bytes, bytes, int]], pack: int) -> list[tuple[None, bytes, int]]:
    """Events grouped per partition into NDJSON messages of ``pack`` lines (order kept)."""
    per: dict[int, list[bytes]] = {}
    for _, raw, p in events:
        per.setdefault(p, []).append(raw)
    out: list[tuple[None, bytes, int]] = []
    for p, raws in sorted(per.items()):
        out.extend((None, b"\n".join(raws[i : i + pack]), p) for i in range(0, len(raws), pack))
    return out


def _metric_values(port: int, name: str) -> list[float] | None:
    """Every sample of ``name`` (one per label set), or None if unreachable."""
    found = scrape(port)
    return None if found is None else found.get(name, [])


def _consumed(port: int) -> float:
    """The worker's records consumed; -1 while its metrics are unreachable."""
    values = _metric_values(port, "xwatch_records_consumed_total")
    return -1.0 if values is None else sum(values)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return bool(orjson.loads(r.read())["ready"])
    except (OSError, ValueError, KeyError):
        return False


def _wait(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark: timed out waiting for {what}")
        time.sleep(0.2)


def _timed_worker(settings: Settings, workdir: Path, target: int, tag: str) -> Timed:
    """Start ``xwatch worker`` on an already filled topic; its events/s while it works,
    and its CPU per event over the same span.

    The rate is taken between two reads of its counter inside the run (the first that
    shows progress and the last before it reaches ``target``), so neither the start-up
    nor the idle time after the last record is counted, whatever the read interval.
    """
    port = settings.web_port
    proc = start_worker(settings, workdir / f"worker-{tag}.log")
    try:
        _wait(lambda: proc.poll() is None and _consumed(port) >= 0, 60,
              "the worker's metrics")  # fmt: skip
        first = inside = last = None
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            n = _consumed(port)
            now, cpu = time.perf_counter(), _cpu_seconds(proc.pid)
            if n >= target:
                last = (now, n, cpu)
                break
            if n > 0:
                if first is None:
                    first = (now, n, cpu)
                elif n > first[1]:
                    inside = (now, n, cpu)
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited; see {workdir}/worker-{tag}.log")
            time.sleep(_RATE_POLL)
        if last is None:
            raise TimeoutError(f"the worker did not consume {target} records")
        if first is None:  # done between two reads: too short to time at this interval
            raise RuntimeError(f"{target} records took less than {_RATE_POLL} s: time more")
        end = inside if inside is not None else last
        done = end[1] - first[1]
        cpu = None if end[2] is None or first[2] is None else 1e6 * (end[2] - first[2]) / done
        return Timed(done / (end[0] - first[0]), cpu)
    finally:
        stop_process(proc)


async def _raw_consume(settings: Settings, target: int) -> float:
    from aiokafka import AIOKafkaConsumer

    from pipeline.app import aiokafka_kwargs

    consumer = AIOKafkaConsumer(
        settings.topics.name("requests"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **aiokafka_kwargs(settings.kafka),
    )
    await consumer.start()
    try:
        n, first = 0, None
        while n < target:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for msgs in batch.values():
                if first is None and msgs:
                    first, n0 = time.perf_counter(), len(msgs)
                n += len(msgs)
        return (n - n0) / (time.perf_counter() - first)
    finally:
        await consumer.stop()


def _faust_noop(settings: Settings, target: int, workdir: Path, take: bool = False) -> Timed:
    """A Faust agent that only counts, in a child process (see :func:`noop_main`); its
    files are named by its app id, so that a second run never reads the first's result.
    ``take``: iterate in the worker's batches (``kafka.take_max``, ``take_within_ms``)."""
    out = workdir / f"noop-{settings.app_id}.json"
    cmd = [
        sys.executable,
        "-m",
        "pipeline.bench_live",
        "noop",
        settings.kafka.bootstrap,
        settings.topics.name("requests"),
        str(target),
        str(out),
        settings.app_id,
        str(settings.web_port),
        str(settings.kafka.fetch_max_wait_ms),
        *((str(settings.kafka.take_max), str(settings.kafka.take_within_ms)) if take else ()),
    ]
    log_path = workdir / f"noop-{settings.app_id}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: out.exists() or proc.poll() is not None, 1800, "the Faust no-op agent")
    finally:
        stop_process(proc)
    if not out.exists():
        raise RuntimeError(f"the Faust no-op agent failed; see {log_path}")
    r = orjson.loads(out.read_bytes())
    done = r["n"] - 1
    return Timed(done / (r["last"] - r["first"]), 1e6 * (r["cpu_last"] - r["cpu_first"]) / done)


def noop_main(
    bootstrap: str,
    topic: str,
    target: int,
    out: str,
    app_id: str,
    port: int,
    fetch_wait_ms: int,
    take_max: int = 0,
    take_within_ms: int = 0,
) -> None:
    """The floor: Faust's own per-message cost, same topic, same serializers, same event
    loop and same consumer fetch wait as the worker. One message per iteration
    (``stream.events()``, Faust's count-only agent), or with ``take_max`` in the worker's
    batches (``stream.take_events``), so that a gain of the worker's batching can be told
    from a cheaper way through Faust."""
    from pipeline.app import App
    from pipeline.cli import use_uvloop

    use_uvloop()

    app = App(
        app_id,
        broker=f"kafka://{bootstrap}",
        broker_session_timeout=6,
        consumer_auto_offset_reset="earliest",
        value_serializer="raw",
        key_serializer="raw",
        web_port=port,
        web_bind="127.0.0.1",
        autodiscover=False,
        topic_allow_declare=False,
        datadir=tempfile.mkdtemp(prefix="xwatch-noop-"),
        fetch_max_wait_ms=fetch_wait_ms,
    )
    src = app.topic(topic, value_type=bytes, key_type=bytes, value_serializer="raw")
    state = {"n": 0, "first": 0.0, "cpu_first": 0.0}

    def count() -> None:
        n = state["n"] = state["n"] + 1
        if n == 1:
            state["first"], state["cpu_first"] = time.perf_counter(), time.process_time()
        if n == target:
            doc = {**state, "last": time.perf_counter(), "cpu_last": time.process_time()}
            Path(out).write_bytes(orjson.dumps(doc))

    @app.agent(src)
    async def noop(stream) -> None:
        if take_max:
            async for batch in stream.take_events(take_max, take_within_ms / 1000):
                for _event in batch:
                    count()
        else:
            async for _event in stream.events():
                count()

    from faust.worker import Worker

    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def _offline_from_file(settings: Settings, events, sim, workdir: Path) -> float:
    """``xwatch replay --input`` on the same events: file reading, decode through alerts."""
    from pipeline import replay

    path = workdir / "events.ndjson"
    with open(path, "wb") as f:
        for _, raw, _ in events:
            f.write(raw + b"\n")
    parts = settings.topics.partitions
    flow = replay.new_flow(settings, set(range(parts)))
    for acct in sim.accounts():
        flow.accounts.put(acct)
    gc.collect()
    batches, _ = replay.file_records(path, parts)
    t = time.perf_counter()
    result = replay.run(settings, batches, flow, replay.Progress(None, enabled=False))
    return result.records / (time.perf_counter() - t)


def _latency(settings: Settings, rate: float, workdir: Path, minutes: float, seed: int) -> dict:
    """p50/p99 of (alert received) - (its window's earliest possible close), real time."""
    from pipeline.codec import encode_request, parse_ts
    from pipeline.sim.scenarios import Simulation, _burst
    from pipeline.subscribe import consumer_for, records

    cfg = settings.detector
    warm = cfg.warmup_minutes + 1
    now = time.time()
    start = now - warm * 60
    accounts = min(20_000, max(200, int(rate * 30)))  # ~2 requests/min each, at most 20k
    sim = Simulation(seed=seed, accounts=accounts, start=start, duration=(warm + minutes) * 60,
                     rate=rate, scenarios=())  # fmt: skip
    attackers: set[str] = set()
    for j in range(12):  # attack accounts starting one after another during the live phase
        burst = _burst(sim, now + 30 + j * (minutes * 60 - 60) / 12, n=j + 1)
        attackers.update(a.account.account_id for a in burst)
        sim.actors.extend(burst)
    port = settings.web_port
    proc = start_worker(settings, workdir / "worker-latency.log")
    samples: list[float] = []
    others: list[str] = []  # other accounts alerted (benign, during the short warm-up)
    lags: list[float] = []  # the worker's ingest lag, sampled during the live phase
    late: list[float] = []  # how late the producer sent live events (every 50th)
    stop = threading.Event()
    live = threading.Event()
    sent = threading.Event()  # the last live event has been sent

    def sample_lag() -> None:
        """How far behind the produced events the agent is: wall clock minus the newest
        event time it has processed (live events carry the wall clock), the worst
        partition, every 0.2 s, from 5 s into the live phase (before that the newest event
        processed is still the history's last) until the last live event is sent (after
        that the lag only measures the wall clock running on while nothing new comes: the
        drain at the end grew it to ~11 s, which earlier runs reported as the p99).
        Separates queueing before the agent from what follows."""
        live.wait()
        stop.wait(5.0)
        while not stop.wait(0.2) and not sent.is_set():
            values = _metric_values(port, "xwatch_event_time_lag_seconds")
            if values:
                lags.append(max(values))

    def collect() -> None:
        cons = consumer_for(settings, [settings.topics.name("alerts")], from_beginning=True)
        try:
            while not stop.is_set():
                for _topic, doc in records(cons, 200):
                    # the planted attacks only: with the shortened warm-up, benign accounts
                    # can be alerted on history, whose lateness says nothing about latency
                    if doc.get("status") != "open" or doc.get("kind") != "account":
                        continue
                    if doc["account_ids"][0] not in attackers:
                        others.append(doc["account_ids"][0])
                    else:
                        closes = parse_ts(doc["emitted_at"]) + cfg.grace_seconds
                        samples.append(time.time() - closes)
        finally:
            cons.close()

    reader = threading.Thread(target=collect, daemon=True)
    sampler = threading.Thread(target=sample_lag, daemon=True)
    try:
        _wait(lambda: _ready(port), 120, "the latency worker to be ready")
        reader.start()
        sampler.start()
        prod = producer(settings)
        publish_accounts(settings, prod, sim)
        topic = settings.topics.name("requests")
        backlog, offset, sent_live = 0, None, 0
        for ev in sim.events():
            if ev.ts < now:  # warm-up history: as fast as possible
                backlog += 1
            else:
                if offset is None:  # history is in: let the worker catch up, then go live
                    prod.flush()
                    _wait(lambda h=backlog: _consumed(port) >= h, 900,
                          "the worker to catch up with the warm-up history")  # fmt: skip
                    offset = time.time() - now + 1.0  # live events carry the wall clock
                    live.set()
                ev.ts += offset
                delay = ev.ts - time.time()
                if delay > 0.002:
                    time.sleep(delay)
                sent_live += 1
                if sent_live % 50 == 0:
                    late.append(max(0.0, time.time() - ev.ts))
            prod.send(topic, key=ev.account_id.encode(), value=encode_request(ev))
        sent.set()
        prod.flush()
        prod.close()
        time.sleep(3 + cfg.grace_seconds)
    finally:
        stop.set()
        live.set()
        reader.join(5)
        sampler.join(5)
        stop_process(proc)
    samples.sort()
    lags.sort()
    late.sort()
    if not samples:
        raise RuntimeError(f"no alerts arrived; see {workdir}/worker-latency.log")
    return {
        "alerts": len(samples),
        "other_alerts": len(others),
        "p50": samples[len(samples) // 2],
        "p99": _pct(samples, 0.99),
        "lag_p50": _pct(lags, 0.5),
        "lag_p99": _pct(lags, 0.99),
        "producer_late_p50": _pct(late, 0.5),
        "producer_late_p99": _pct(late, 0.99),
        "rate": rate,
    }


def _pct(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def memory_main(accounts: int, seed: int, out: str) -> None:
    """Child process: RSS growth per active account over 10 simulated minutes."""
    gc.set_threshold(100_000, 50, 100)
    from pipeline.codec import encode_request
    from pipeline.enrich.network import NetworkEnricher
    from pipeline.flow import Flow, partition_for
    from pipeline.records import Source
    from pipeline.sim.scenarios import Simulation

    settings = Settings.load()
    network = NetworkEnricher.from_settings(settings.network)
    flow = Flow(settings.detector, network, partitions={0, 1, 2, 3})
    flow.process_message(None, b"{}", Source("warm", 0, 0))  # load lazy tables first
    sim = Simulation(seed=seed, accounts=accounts, duration=600, rate=accounts * 2 / 60,
                     scenarios=())  # fmt: skip
    # the simulator's own per-account state (its arrival heap) is built by the first event:
    # before the baseline, so that only the core's growth is charged to the accounts
    events = sim.events()
    first = next(events)
    gc.collect()
    before = _rss()
    for i, ev in enumerate(itertools.chain([first], events)):
        key = ev.account_id.encode()
        flow.process_message(key, encode_request(ev), Source("m", partition_for(key, 4), i))
    gc.collect()
    active = sum(len(sh.windows.accounts) for sh in flow.shards.values())
    doc = {"active_accounts": active, "bytes_per_account": round((_rss() - before) / active)}
    Path(out).write_bytes(orjson.dumps(doc))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _memory(accounts: int, seed: int, workdir: Path) -> dict:
    out = workdir / f"memory-{accounts}.json"
    subprocess.run(
        [sys.executable, "-m", "pipeline.bench_live", "memory", str(accounts), str(seed), str(out)],
        check=True,
    )
    return orjson.loads(out.read_bytes())


def bench_live(
    settings: Settings,
    events: int = 200_000,
    accounts: int = 20_000,
    pack: int = 100,
    latency_minutes: float = 3.0,
    seed: int = 7,
    memory_sizes: tuple[int, ...] = (10_000, 100_000),
    single_pairs: int = 3,
) -> dict:
    """Every figure of the live benchmark, side by side in one run (see the README).

    One-event messages are timed in ``single_pairs`` rounds of the Faust no-op, the no-op
    in the worker's batches and the worker (in rotating order), each on fresh consumer
    groups over the same topic: on a shared machine the worker's ratio to the floor moved
    by a tenth between two rounds of one code, more than the criterion's margin, so the
    round with the median ratio to the no-op is reported, every round's figures with it
    (``single_pairs``), and the median of the worker's ratios to the batched no-op.
    """
    workdir = Path(tempfile.mkdtemp(prefix="xwatch-bench-"))
    with bootstrap_and_events(settings, events, accounts, seed) as (bootstrap, evs, sim):
        single = _scoped(settings, bootstrap, "single")
        packed = _scoped(settings, bootstrap, "packed")
        for s, msgs in ((single, [(k, v, p) for k, v, p in evs]), (packed, _packed(evs, pack))):
            ensure_topics(s)
            _produce(s, msgs, sim)
        n = len(evs)
        raw_eps = asyncio.run(_raw_consume(single, n))
        if single_pairs < 1:
            raise ValueError(f"single_pairs must be 1 or more, not {single_pairs}")
        timed = [_single_round(single, n, workdir, i) for i in range(single_pairs)]
        pairs = [(a.eps, b.eps, c.eps) for a, b, c in timed]
        (noop_eps, noop_take_eps, live_single), vs_take = median_round(pairs)
        by_cpu = cpu_medians(timed)
        packed_timed = _timed_worker(packed, workdir, n, "packed")
        live_packed = packed_timed.eps
        offline = _offline_from_file(single, evs, sim, workdir)
        # a shorter warm-up keeps the history to replay before going live at ~4 minutes
        lat_settings = _scoped(
            settings,
            bootstrap,
            "latency",
            **{"detector.warmup_minutes": "3", "detector.warmup_windows": "50"},
        )
        ensure_topics(lat_settings)
        latency = _latency(lat_settings, live_single / 2, workdir, latency_minutes, seed)
        memory = {str(m): _memory(m, seed, workdir) for m in memory_sizes}
    largest = memory[str(max(memory_sizes))]["bytes_per_account"] if memory else None
    return {
        "machine": machine(),
        "events": n,
        "accounts": accounts,
        "pack": pack,
        "raw_consume_eps": round(raw_eps),
        "faust_noop_eps": round(noop_eps),
        "faust_noop_take_eps": round(noop_take_eps),
        "live_single_eps": round(live_single),
        "live_packed_eps": round(live_packed),
        "offline_eps": round(offline),
        "latency_p50_s": round(latency["p50"], 3),
        "latency_p99_s": round(latency["p99"], 3),
        "latency_alerts": latency["alerts"],
        "latency_other_alerts": latency["other_alerts"],
        "latency_rate_eps": round(latency["rate"]),
        "ingest_lag_p50_s": _round(latency["lag_p50"]),
        "ingest_lag_p99_s": _round(latency["lag_p99"]),
        "producer_late_p50_s": _round(latency["producer_late_p50"]),
        "producer_late_p99_s": _round(latency["producer_late_p99"]),
        "bytes_per_account": largest,
        # CPU microseconds per message (per event, packed) of each process: medians over
        # the rounds, each round's in single_pairs
        "faust_noop_cpu_us": _round(by_cpu["faust_noop_cpu_us"]),
        "faust_noop_take_cpu_us": _round(by_cpu["faust_noop_take_cpu_us"]),
        "live_single_cpu_us": _round(by_cpu["live_single_cpu_us"]),
        "live_packed_cpu_us": _round(packed_timed.cpu_us),
        "single_pairs": [
            {
                "faust_noop_eps": round(a.eps),
                "faust_noop_take_eps": round(b.eps),
                "live_single_eps": round(c.eps),
                "faust_noop_cpu_us": _round(a.cpu_us),
                "faust_noop_take_cpu_us": _round(b.cpu_us),
                "live_single_cpu_us": _round(c.cpu_us),
            }
            for a, b, c in timed
        ],
        "memory": memory,
        "ratios": {
            "live_single_vs_faust_noop": live_single / noop_eps,
            "live_packed_vs_raw_consume": live_packed / raw_eps,
            "faust_noop_vs_raw_consume": noop_eps / raw_eps,
            "live_single_vs_faust_noop_take": vs_take,
            "faust_noop_take_vs_faust_noop": noop_take_eps / noop_eps,
            # by CPU per message: the no-op's over the worker's (so, like the rates above,
            # worker/no-op in messages per CPU-second), the median over the rounds
            "live_single_vs_faust_noop_cpu": by_cpu["vs_noop"],
            "live_single_vs_faust_noop_take_cpu": by_cpu["vs_take"],
        },
        "workdir": str(workdir),
    }


def median_round(
    rounds: list[tuple[float, float, float]],
) -> tuple[tuple[float, float, float], float]:
    """The round (no-op, batched no-op, worker) whose worker/no-op ratio is the median
    (the upper one of an even count), and the median of the worker/batched-no-op ratios,
    which may come from another round.

    >>> median_round([(10, 10, 9), (10, 12, 7), (10, 8, 8)])
    ((10, 8, 8), 0.9)
    """
    by_noop = sorted(rounds, key=lambda r: r[2] / r[0])[len(rounds) // 2]  # median_high's
    return by_noop, median_high(r[2] / r[1] for r in rounds)


def cpu_medians(rounds: list[tuple[Timed, Timed, Timed]]) -> dict[str, float | None]:
    """Over rounds of (no-op, batched no-op, worker): the median CPU per message of each,
    and the medians of the worker's messages per CPU-second against each no-op's
    (``vs_noop``, ``vs_take``: no-op CPU / worker CPU per round). All None if a round's
    CPU is unknown (no ``/proc``).

    >>> r = [(Timed(9, 140), Timed(9, 135), Timed(8, 150)), (Timed(9, 150), Timed(9, 130),
    ...      Timed(7, 160)), (Timed(9, 136), Timed(9, 134), Timed(8, 170))]
    >>> {k: round(v, 3) for k, v in cpu_medians(r).items()}  # doctest: +NORMALIZE_WHITESPACE
    {'faust_noop_cpu_us': 140, 'faust_noop_take_cpu_us': 134, 'live_single_cpu_us': 160,
     'vs_noop': 0.933, 'vs_take': 0.812}
    """
    names = ("faust_noop_cpu_us", "faust_noop_take_cpu_us", "live_single_cpu_us")
    if any(t.cpu_us is None for r in rounds for t in r):
        return dict.fromkeys((*names, "vs_noop", "vs_take"))
    out: dict[str, float | None] = {
        name: median_high(r[j].cpu_us for r in rounds) for j, name in enumerate(names)
    }
    for key, j in (("vs_noop", 0), ("vs_take", 1)):
        out[key] = median_high(r[j].cpu_us / r[2].cpu_us for r in rounds)
    return out


def _single_round(single: Settings, n: int, workdir: Path, i: int) -> tuple[Timed, Timed, Timed]:
    """(Faust no-op, the no-op in the worker's batches, worker) timed on the one-event
    topic, each on a group of its own (the worker with a state topic and data directory of
    its own), one after the other, in an order rotated by ``i``: a machine speeding up or
    slowing down over the rounds favours none of the three."""
    noop = single.with_overrides({"app_id": f"{single.app_id}-noop{i}", "web_port": free_port()})
    take = single.with_overrides({"app_id": f"{single.app_id}-take{i}", "web_port": free_port()})
    worker = single.with_overrides(
        {
            "app_id": f"{single.app_id}-w{i}",
            "web_port": str(free_port()),
            "topics.state": f"state-w{i}",
            "data_dir": str(workdir / f"data-w{i}"),
        }
    )
    ensure_topics(worker)
    runs = (
        lambda: _faust_noop(noop, n, workdir),
        lambda: _faust_noop(take, n, workdir, take=True),
        lambda: _timed_worker(worker, workdir, n, f"single{i}"),
    )
    out: list[Timed] = [Timed(0.0)] * 3
    for j in (i % 3, (i + 1) % 3, (i + 2) % 3):
        out[j] = runs[j]()
    return out[0], out[1], out[2]


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def print_live(r: dict) -> None:
    print(f"machine: {r['machine']}")
    print(f"{r['events']:,} events of {r['accounts']:,} accounts; packed = {r['pack']} per message")
    ratios = r["ratios"]
    rows = [
        ("raw aiokafka getmany consume (floor)", r["raw_consume_eps"], None, ""),
        ("Faust no-op agent (floor)", r["faust_noop_eps"], r.get("faust_noop_cpu_us"), ""),
        ("Faust no-op in the worker's batches", r["faust_noop_take_eps"],
         r.get("faust_noop_take_cpu_us"),
         f"{ratios['faust_noop_take_vs_faust_noop']:.2f} x Faust no-op"),
        ("live worker, one event per message", r["live_single_eps"], r.get("live_single_cpu_us"),
         f"{ratios['live_single_vs_faust_noop']:.2f} x Faust no-op "
         f"({ratios['live_single_vs_faust_noop_take']:.2f} x in batches, the median)"),
        ("live worker, packed messages", r["live_packed_eps"], r.get("live_packed_cpu_us"),
         f"{ratios['live_packed_vs_raw_consume']:.2f} x raw consume"),
        ("offline core, replay from a file", r["offline_eps"], None, ""),
    ]  # fmt: skip
    print(f"{'measurement':42s} {'events/s':>10s} {'CPU us/ev':>9s}  ratio")
    for name, eps, cpu, ratio in rows:
        cpu_text = "" if cpu is None else f"{cpu:.1f}"
        print(f"{name:42s} {eps:>10,d} {cpu_text:>9s}  {ratio}")
    if ratios.get("live_single_vs_faust_noop_cpu") is not None:
        print(
            f"  by CPU per message (the median over the rounds): the one-event worker runs "
            f"{ratios['live_single_vs_faust_noop_cpu']:.2f} x the Faust no-op's messages per "
            f"CPU-second ({ratios['live_single_vs_faust_noop_take_cpu']:.2f} x in batches)"
        )
    if r.get("live_packed_cpu_us"):
        print(
            f"  packed, per CPU-second of the worker: {1e6 / r['live_packed_cpu_us']:,.0f} "
            f"events (the broker and the benchmark run on the same cores)"
        )
    pairs = r["single_pairs"]
    if len(pairs) > 1:
        each = "; ".join(
            f"{p['live_single_eps']:,}/{p['faust_noop_eps']:,} = "
            f"{p['live_single_eps'] / p['faust_noop_eps']:.2f}, "
            f"/{p['faust_noop_take_eps']:,} = {p['live_single_eps'] / p['faust_noop_take_eps']:.2f}"
            + (
                f" (CPU us {p['live_single_cpu_us']:.1f} against {p['faust_noop_cpu_us']:.1f} "
                f"and {p['faust_noop_take_cpu_us']:.1f})"
                if p.get("live_single_cpu_us") is not None
                else ""
            )
            for p in pairs
        )
        print(
            f"  one-event rows: the median of {len(pairs)} rounds (worker/no-op, "
            f"worker/no-op in batches): {each}"
        )
    print(
        f"event-to-alert latency at {r['latency_rate_eps']:,} events/s (half the single-event "
        f"maximum), {r['latency_alerts']} planted attacks alerted: p50 "
        f"{r['latency_p50_s']:.3f} s, p99 {r['latency_p99_s']:.3f} s "
        f"({r['latency_other_alerts']} other accounts alerted after the 3-minute warm-up)"
    )
    if r["ingest_lag_p50_s"] is not None:
        print(
            f"  the worker's ingest lag over the same phase (wall clock minus the newest "
            f"event time processed, sampled): p50 {r['ingest_lag_p50_s']:.3f} s, "
            f"p99 {r['ingest_lag_p99_s']:.3f} s; the benchmark's producer sent events "
            f"p50 {r['producer_late_p50_s']:.3f} s, p99 {r['producer_late_p99_s']:.3f} s "
            f"after their time"
        )
    for m in r["memory"].values():
        print(
            f"resident memory per active account at {m['active_accounts']:,} active accounts: "
            f"{m['bytes_per_account']:,} bytes"
        )


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "noop":
        b, topic, target, out, app_id, port, wait = sys.argv[2:9]
        take = [int(a) for a in sys.argv[9:11]]  # take_max, take_within_ms: the batch no-op
        noop_main(b, topic, int(target), out, app_id, int(port), int(wait), *take)
    elif mode == "memory":
        memory_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
