"""The whole core offline: the burst is caught, benign traffic stays quiet, and the output
is a pure function of each partition's event sequence."""

from __future__ import annotations

import pickle
import random

from pipeline.codec import encode_alert, encode_request
from pipeline.flow import Flow, partition_for
from pipeline.records import Alert, Source
from pipeline.settings import Settings
from pipeline.sim.scenarios import Simulation

PARTITIONS = 4


def run_simulation(
    seed: int,
    network,
    scenarios: tuple[str, ...] = ("burst",),
    duration: float = 3600.0,
    order: str = "time",
    flows: list[Flow] | None = None,
    observer=None,
    overrides: dict[str, str] | None = None,
) -> tuple[list[Alert], Simulation]:
    """Run a simulation through a fresh Flow as encoded messages, like the worker sees them.

    ``order="shuffled"`` interleaves partitions randomly (each partition keeps its order),
    as a rebalanced or multi-worker deployment would. ``flows`` receives the flow, which
    has ``observer`` as its score observer; ``overrides`` are settings.
    """
    sim = Simulation(seed=seed, accounts=300, duration=duration, rate=15.0, scenarios=scenarios)
    cfg = Settings.load(environ={}, overrides=overrides or {}).detector
    flow = Flow(cfg, network, partitions=set(range(PARTITIONS)))
    flow.score_observer = observer
    if flows is not None:
        flows.append(flow)
    for acct in sim.accounts():
        flow.accounts.put(acct)
    per_partition: dict[int, list[tuple[bytes, bytes]]] = {}
    for ev in sim.events():
        key = ev.account_id.encode()
        per_partition.setdefault(partition_for(key, PARTITIONS), []).append(
            (key, encode_request(ev))
        )
    messages = []
    if order == "time":
        messages = sorted(
            ((p, i, k, v) for p, msgs in per_partition.items() for i, (k, v) in enumerate(msgs)),
            key=lambda m: (m[1], m[0]),
        )
    else:
        rng = random.Random(seed)
        cursors = {p: 0 for p in per_partition}
        while cursors:
            p = rng.choice(sorted(cursors))
            i = cursors[p]
            k, v = per_partition[p][i]
            messages.append((p, i, k, v))
            cursors[p] += 1
            if cursors[p] == len(per_partition[p]):
                del cursors[p]
    alerts: list[Alert] = []
    for p, i, k, v in messages:
        alerts += flow.process_message(k, v, Source("api.requests", p, i)).alerts
    c = flow.counters
    assert c.consumed == c.processed + c.dead_lettered == len(messages)
    return alerts, sim


def test_burst_caught_quickly_and_benign_quiet(network) -> None:
    alerts, sim = run_simulation(seed=7, network=network)
    (label,) = sim.labels()
    opened = [a for a in alerts if a.status == "open"]
    assert [a.account_ids for a in opened] == [[label["account_id"]]]
    delay = opened[0].emitted_at - label["start"]
    assert 0 < delay <= 120, delay
    assert opened[0].severity in ("medium", "high", "critical")
    assert {r.feature for r in opened[0].reasons} & {
        "requests_per_min",
        "completion_tokens_per_min",
    }


def test_clean_run_has_no_alerts(network) -> None:
    for seed in (1, 2):
        alerts, _ = run_simulation(seed=seed, network=network, scenarios=())
        assert alerts == []


def test_same_events_same_alert_bytes_in_any_partition_interleaving(network) -> None:
    a1, _ = run_simulation(seed=11, network=network, duration=2400)
    a2, _ = run_simulation(seed=11, network=network, duration=2400, order="shuffled")
    assert a1
    key = lambda a: (a.emitted_at, a.alert_id, a.status)  # noqa: E731
    assert [encode_alert(a) for a in sorted(a1, key=key)] == [
        encode_alert(a) for a in sorted(a2, key=key)
    ]


def test_packed_message_bad_line_dead_letters_alone(network) -> None:
    sim = Simulation(seed=3, accounts=5, duration=120, rate=2.0, scenarios=())
    events = list(sim.events())[:5]
    lines = [encode_request(e) for e in events]
    lines.insert(2, b'{"event_id": "broken"')
    flow = Flow(Settings.load(environ={}).detector, network)
    out = flow.process_message(b"k", b"\n".join(lines) + b"\n", Source("t", 0, 42))
    assert flow.counters.processed == 5
    (dl,) = out.dead_letters
    assert (dl.reason, dl.source.line, dl.source.offset) == ("invalid_json", 3, 42)


def test_far_future_timestamp_is_dead_lettered(network) -> None:
    sim = Simulation(seed=3, accounts=5, duration=120, rate=2.0, scenarios=())
    first = next(sim.events())
    flow = Flow(Settings.load(environ={}).detector, network)
    flow.process_message(b"k", encode_request(first), Source("t", 0, 0))
    first.ts += 10 * 86400
    out = flow.process_message(b"k", encode_request(first), Source("t", 0, 1))
    assert [d.reason for d in out.dead_letters] == ["timestamp_too_far_ahead"]


def test_one_digest_per_closed_bucket_from_the_first_event(network) -> None:
    """A bucket is due when the watermark passes one still open, not whenever it differs
    from the last closed one: in a partition's first ``grace`` seconds it is behind the
    bucket before the first event's, and every event there used to run the close pass and
    send the campaign stage an empty digest (one per event, on both paths)."""
    sim = Simulation(seed=3, accounts=200, duration=600, rate=20.0, scenarios=())
    for native in (True, False):
        flow = Flow(Settings.load(environ={}).detector, network, external_campaigns=True,
                    native=native)  # fmt: skip
        throughs: dict[int, list[int]] = {}
        for i, ev in enumerate(sim.events()):
            key = ev.account_id.encode()
            p = partition_for(key, PARTITIONS)
            for d in flow.process(key, encode_request(ev), p, i, "t").digests:
                throughs.setdefault(d.partition, []).append(d.through)
        assert set(throughs) == set(range(PARTITIONS))
        for seq in throughs.values():
            assert seq == sorted(set(seq))  # each closed bucket once, in order
            assert 8 <= len(seq) <= 10  # ~10 minutes of traffic


def test_a_flow_has_its_models_trees_before_its_first_event(network) -> None:
    """River builds the cohort models' trees in Python (20-80 ms): a flow asks for them when
    it is made, so that the first event of a partition does not wait for them."""
    from pipeline.detect.population import _TEMPLATES, HST_HEIGHT, HST_TREES, HST_WINDOW

    cfg = Settings.load(environ={}, overrides={"detector.model_seed": "987"}).detector
    key = (HST_TREES, HST_HEIGHT, HST_WINDOW, 987)
    _TEMPLATES.pop(key, None)
    flow = Flow(cfg, network)
    assert key in _TEMPLATES and not flow.shards


def test_an_observer_of_scores_changes_nothing_the_core_learns(network) -> None:
    """Without an observer, a view of the warm-up is learned without being scored (nothing
    can be flagged then); with one (replay's report), it is scored too. Either way the
    core learns the same from each view and raises the same alerts. The warm-up here is
    long enough to hold the burst (at 20 minutes) and the first hourly views, and the
    baselines warm enough to score them."""
    runs = []
    short = {"detector.warmup_minutes": "30", "detector.warmup_windows": "20"}
    seen: list[float] = []
    for observer in (None, lambda view, score, flagged: seen.append(score)):
        flows: list[Flow] = []
        alerts, _ = run_simulation(
            7, network, duration=7200.0, flows=flows, observer=observer, overrides=short
        )
        learned = {
            p: pickle.dumps((sh.detector.baselines, sh.detector.anomaly, sh.windows.accounts))
            for p, sh in flows[0].shards.items()
        }
        runs.append(([encode_alert(a) for a in alerts], learned, len(seen)))
    (alerts_a, learned_a, _), (alerts_b, learned_b, scored) = runs
    assert alerts_a and alerts_a == alerts_b
    assert learned_a == learned_b
    assert scored > 1000
