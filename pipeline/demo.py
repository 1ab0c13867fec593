"""``xwatch demo``: embedded broker, topics, a worker, simulated traffic and a live view.

The live view reads ``alerts`` and the DLQ exactly as an outside subscriber would. The
demo ends after ``--duration`` wall seconds, when the simulation is over and drained, or on
Ctrl-C;
it then stops the worker and the broker it started, leaving no process behind.
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
from pathlib import Path

from pipeline.broker import LocalBroker, free_port
from pipeline.codec import format_ts
from pipeline.settings import Settings
from pipeline.sim.publish import PublishStats, publish_simulation
from pipeline.sim.scenarios import Simulation
from pipeline.subscribe import consumer_for, format_alert, records
from pipeline.topics import ensure_topics


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
        return _live_view(settings, args, sim, stats, labels, worker)
    except KeyboardInterrupt:
        return 0
    finally:
        stop.set()
        print("\nstopping worker and broker ...", flush=True)
        if worker is not None:
            stop_process(worker)
        if broker is not None:
            broker.stop()


def _live_view(settings, args, sim, stats: PublishStats, labels, worker) -> int:
    t = settings.topics
    consumer = consumer_for(settings, [t.name("alerts"), t.name("dlq")], from_beginning=True)
    alerted: dict[str, str] = {}
    dlq = 0
    started = time.monotonic()
    last_line = last_events = 0
    last_time = started
    drained_since = None
    try:
        while True:
            for topic, doc in records(consumer, timeout_ms=250):
                if topic == t.name("dlq"):
                    dlq += 1
                    continue
                for acct in doc.get("account_ids", []):
                    alerted[acct] = doc.get("severity", "?")
                who = "ATTACK" if set(doc.get("account_ids", [])) & set(labels) else "benign"
                print(f"\n  ALERT [{who}] {format_alert(doc)}", flush=True)
            now = time.monotonic()
            if now - last_line >= 2.0:
                rate = (stats.events - last_events) / (now - last_time)
                last_events, last_time, last_line = stats.events, now, now
                et = format_ts(stats.event_time) if stats.event_time else "-"
                print(
                    f"[{now - started:5.0f}s] event time {et}  events in {stats.events:>8,d}  "
                    f"{rate:7,.0f} ev/s  DLQ {dlq:>4d}  alerts on {len(alerted)} account(s)",
                    flush=True,
                )
            if worker.poll() is not None:
                print("worker exited unexpectedly; see its log", file=sys.stderr)
                return 1
            if args.duration and now - started >= args.duration:
                break
            if stats.done:
                drained_since = drained_since or now
                if now - drained_since > 15.0:
                    break
    finally:
        consumer.close()
        _summary(stats, dlq, alerted, labels)
    return 0


def _summary(stats: PublishStats, dlq: int, alerted: dict[str, str], labels: dict) -> None:
    caught = [a for a in labels if a in alerted]
    false = [a for a in alerted if a not in labels]
    print(
        f"\nsummary: {stats.events:,d} events and {stats.malformed} malformed records sent, "
        f"{dlq} dead-lettered; attack accounts alerted {len(caught)}/{len(labels)}; "
        f"benign accounts alerted {len(false)}",
        flush=True,
    )
