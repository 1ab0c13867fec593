"""``xwatch demo``: embedded broker, topics, a worker, simulated traffic and a live view.

The live view reads ``alerts`` and the DLQ exactly as an outside subscriber would. The
demo stops publishing after ``--duration`` wall seconds or when the simulation is over,
then drains: it waits until the worker has consumed every record sent and the view has
received every alert and dead letter the worker counts in its metrics (at most
:data:`DRAIN_S`), so the summary covers everything sent. Ctrl-C stops it at once. It then
stops the worker and the broker it started, leaving no process behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.broker import LocalBroker, free_port
from pipeline.codec import format_ts
from pipeline.metrics import scrape
from pipeline.settings import Settings
from pipeline.sim.publish import PublishStats, publish_simulation
from pipeline.sim.scenarios import Simulation
from pipeline.subscribe import consumer_for, format_alert, records
from pipeline.topics import ensure_topics

#: How long the demo waits, once publishing has stopped, for the worker to catch up.
DRAIN_S = 60.0


@dataclass(slots=True, frozen=True)
class WorkerProgress:
    """What the worker says it has done (its /metrics counters, summed over labels)."""

    consumed: int
    dead_lettered: int
    alerts: int

    @classmethod
    def of(cls, found: dict[str, list[float]]) -> WorkerProgress:
        """From a worker's metrics (:func:`pipeline.metrics.samples`)."""

        def total(name: str) -> int:
            return int(sum(found.get(name + "_total", ())))

        return cls(
            total("xwatch_records_consumed"),
            total("xwatch_records_dead_lettered"),
            total("xwatch_alerts"),
        )


def worker_progress(port: int) -> WorkerProgress | None:
    """The worker's progress from its metrics endpoint; None while it does not answer."""
    found = scrape(port)
    return None if found is None else WorkerProgress.of(found)


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen:
    """``xwatch worker`` as a child process with exactly these settings."""
    env = {**os.environ, **settings.to_env()}
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop_process(proc: subprocess.Popen, grace: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def run_demo(settings: Settings, args: argparse.Namespace, sim: Simulation) -> int:
    broker = None
    workdir = Path(tempfile.mkdtemp(prefix="xwatch-demo-"))
    worker = None
    stop = threading.Event()
    try:
        if not settings.kafka.bootstrap:
            print("starting the embedded Kafka-API broker (Tansu) ...", flush=True)
            broker = LocalBroker(settings.broker_bin).start()
            settings = settings.with_overrides({"kafka.bootstrap": broker.bootstrap})
        settings = settings.with_overrides(
            {
                "data_dir": str(workdir / "state"),
                "kafka.session_timeout_s": 6.0,
                "web_port": free_port(),
                "web_bind": "127.0.0.1",
            }
        )
        print(f"broker {settings.kafka.bootstrap}; creating topics", flush=True)
        ensure_topics(settings)
        worker = start_worker(settings, workdir / "worker.log")
        print(
            f"worker started (log: {workdir / 'worker.log'}; metrics: "
            f"http://127.0.0.1:{settings.web_port}/metrics)",
            flush=True,
        )
        labels = {row["account_id"]: row for row in sim.labels() if row["label"] == "attack"}
        print(
            f"simulating {len(sim.actors)} accounts from {format_ts(sim.start)} for "
            f"{(sim.end - sim.start) / 60:.0f} min of event time at {args.speed:g}x; attack "
            f"scenario(s) {args.scenarios} start at "
            f"+{(min(r['start'] for r in labels.values()) - sim.start) / 60 if labels else 0:.0f}"
            " min on "
            f"{', '.join(labels)}",
            flush=True,
        )
        stats = PublishStats()
        bad_every = args.bad_every or 5000
        thread = threading.Thread(
            target=publish_simulation,
            args=(settings, sim, args.speed, bad_every, stats, stop),
            daemon=True,
        )
        thread.start()
        return _live_view(settings, args, stats, labels, worker, stop)
    except KeyboardInterrupt:
        return 0
    finally:
        stop.set()
        print("\nstopping worker and broker ...", flush=True)
        if worker is not None:
            stop_process(worker)
        if broker is not None:
            broker.stop()


def _live_view(settings, args, stats: PublishStats, labels, worker, stop) -> int:
    t = settings.topics
    consumer = consumer_for(settings, [t.name("alerts"), t.name("dlq")], from_beginning=True)
    alerted: dict[str, str] = {}
    dlq = alert_records = 0
    started = time.monotonic()
    last_line = last_events = 0
    last_time = started
    draining_since = None
    progress = None
    try:
        while True:
            for topic, doc in records(consumer, timeout_ms=250):
                if topic == t.name("dlq"):
                    dlq += 1
                    continue
                alert_records += 1
                for acct in doc.get("account_ids", []):
                    alerted[acct] = doc.get("severity", "?")
                who = "ATTACK" if set(doc.get("account_ids", [])) & set(labels) else "benign"
                print(f"\n  ALERT [{who}] {format_alert(doc)}", flush=True)
            now = time.monotonic()
            if now - last_line >= 2.0 or draining_since is not None:
                progress = worker_progress(settings.web_port) or progress
            if now - last_line >= 2.0:
                rate = (stats.events - last_events) / (now - last_time)
                last_events, last_time, last_line = stats.events, now, now
                et = format_ts(stats.event_time) if stats.event_time else "-"
                consumed = f"{progress.consumed:>8,d}" if progress else "       -"
                print(
                    f"[{now - started:5.0f}s] event time {et}  events in {stats.events:>8,d}  "
                    f"{rate:7,.0f} ev/s  worker consumed {consumed}  DLQ {dlq:>4d}  "
                    f"alerts on {len(alerted)} account(s)",
                    flush=True,
                )
            if worker.poll() is not None:
                print("worker exited unexpectedly; see its log", file=sys.stderr)
                return 1
            if draining_since is None and (
                stats.done or (args.duration and now - started >= args.duration)
            ):
                stop.set()  # the publisher stops, flushes and sets stats.done
                draining_since = now
                print("publishing stopped; waiting for the worker to catch up", flush=True)
            if draining_since is not None and stats.done:
                sent = stats.events + stats.malformed
                if (
                    progress is not None
                    and progress.consumed >= sent
                    and dlq >= progress.dead_lettered
                    and alert_records >= progress.alerts
                ):
                    break
                if now - draining_since > DRAIN_S:
                    break
    finally:
        consumer.close()
        _summary(stats, progress, dlq, alerted, labels)
    return 0


def _summary(
    stats: PublishStats, progress: WorkerProgress | None, dlq: int, alerted: dict, labels: dict
) -> None:
    caught = [a for a in labels if a in alerted]
    false = [a for a in alerted if a not in labels]
    sent = stats.events + stats.malformed
    consumed = progress.consumed if progress is not None else 0
    behind = (
        ""
        if consumed >= sent
        else f" (the worker was {sent - consumed:,d} records behind when the demo stopped)"
    )
    print(
        f"\nsummary: {stats.events:,d} events and {stats.malformed} malformed records sent, "
        f"{consumed:,d} consumed by the worker{behind}, {dlq} dead-lettered; attack accounts "
        f"alerted {len(caught)}/{len(labels)}; benign accounts alerted {len(false)}",
        flush=True,
    )
