"""Labelled scenarios through the detection core, offline, and the figures that matter.

``evaluate(...)`` simulates a benign population plus scenarios (see
:mod:`pipeline.sim.scenarios`), feeds every event to :class:`pipeline.flow.Flow` exactly as
the worker would (sharded by the Kafka partitioner, in each partition's order; the codec is
skipped because events are already records, and its round trip is proven separately), and
scores the alerts against the ground truth:

* **campaign recall**: attack groups with at least one member alerted;
* **member recall / precision**: attack accounts alerted, and the share of accounts named in
  the scenario's alerts that really are attackers;
* **benign accounts falsely alerted per 10,000 accounts per simulated day**;
* **time to detect**: first alert on a group minus the start of its attack (event time;
  median and p90 over groups);
* **completion tokens extracted before the first alert** on the group.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from pipeline.enrich.network import NetworkEnricher
from pipeline.flow import Flow, Output, partition_for
from pipeline.records import Alert
from pipeline.settings import Settings
from pipeline.sim.scenarios import ATTACKS, BENIGN, DAY, HOUR, Simulation

START = 1_793_606_400.0  # 2026-11-02T08:00:00Z, fixed so that runs are comparable


@dataclass(slots=True)
class Run:
    sim: Simulation
    alerts: list[Alert]
    events: int
    seconds: float
    tokens_before: dict[str, int]  # campaign -> completion tokens before its first alert


def run(
    settings: Settings,
    network: NetworkEnricher,
    seed: int,
    scenarios: tuple[str, ...],
    accounts: int,
    days: float,
    rate: float | None = None,
    attack_at: float = 12 * HOUR,
    partitions: int = 4,
) -> Run:
    """Simulate and detect. ``rate`` defaults to 0.5 requests/min per benign account."""
    sim = Simulation(
        seed=seed,
        accounts=accounts,
        start=START,
        duration=days * DAY,
        rate=rate if rate is not None else accounts * 0.5 / 60,
        scenarios=scenarios,
        attack_at=attack_at,
    )
    flow = Flow(settings.detector, network, partitions=set(range(partitions)))
    for acct in sim.accounts():
        flow.accounts.put(acct)
    campaign_of = {r["account_id"]: r for r in sim.labels() if r["label"] == "attack"}
    extracted: dict[str, int] = defaultdict(int)
    tokens_before: dict[str, int] = {}
    alerts: list[Alert] = []
    out = Output()
    parts: dict[str, int] = {}
    n = 0
    t0 = time.perf_counter()
    for ev in sim.events():
        n += 1
        p = parts.get(ev.account_id)
        if p is None:
            p = parts[ev.account_id] = partition_for(ev.account_id.encode(), partitions)
        row = campaign_of.get(ev.account_id)
        if row is not None and ev.ts >= row["start"]:
            extracted[row["campaign"]] += ev.completion_tokens
        flow.process_event(ev, p, out)
        if out.alerts:
            for alert in out.alerts:
                for acct in alert.account_ids:
                    hit = campaign_of.get(acct)
                    if hit is not None and hit["campaign"] not in tokens_before:
                        tokens_before[hit["campaign"]] = extracted[hit["campaign"]]
            alerts.extend(out.alerts)
            out.alerts.clear()
    return Run(sim, alerts, n, time.perf_counter() - t0, tokens_before)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def figures(r: Run) -> dict:
    """Per-scenario and overall figures of one run (see the module docstring)."""
    sim = r.sim
    days = (sim.end - sim.start) / DAY
    labels = {row["account_id"]: row for row in sim.labels()}
    first_alert: dict[str, float] = {}
    co_listed: dict[str, set[str]] = defaultdict(set)  # scenario -> accounts in its alerts
    for alert in r.alerts:
        if alert.status == "resolved":
            continue
        for acct in alert.account_ids:
            first_alert.setdefault(acct, alert.emitted_at)
        scen = {labels[a]["scenario"] for a in alert.account_ids if a in labels}
        for s in scen:
            co_listed[s].update(alert.account_ids)
    all_accounts = [a.account_id for a in sim.accounts()]
    benign = [a for a in all_accounts if labels.get(a, {}).get("label") != "attack"]
    alerted_benign = [a for a in benign if a in first_alert]
    per: dict[str, dict] = {}
    scenario_names = sorted({row["scenario"] for row in labels.values()})
    for name in scenario_names:
        rows = [row for row in labels.values() if row["scenario"] == name]
        if rows[0]["label"] == "attack":
            per[name] = _attack_figures(rows, first_alert, co_listed[name], r.tokens_before)
        else:
            ids = [row["account_id"] for row in rows]
            per[name] = _benign_figures(len(ids), sum(a in first_alert for a in ids), days)
    population = [a for a in benign if a not in labels]
    pop_bad = [a for a in population if a in first_alert]
    if sim.launched_at is not None:  # the launch moves the whole population: attribute it
        lo, hi = sim.launched_at, sim.launched_at + 7 * HOUR
        bad = sum(lo <= first_alert[a] < hi for a in pop_bad)
        per["model_launch"] = _benign_figures(len(population), bad, days)
    per["population"] = _benign_figures(len(population), len(pop_bad), days)
    attack_rows = [row for row in labels.values() if row["label"] == "attack"]
    overall: dict = {
        "events": r.events,
        "events_per_s": round(r.events / r.seconds),
        "simulated_days": days,
        "benign_accounts": len(benign),
        "benign_falsely_alerted": len(alerted_benign),
        "false_alerts_per_10k_per_day": len(alerted_benign) / max(1, len(benign)) * 10_000 / days,
    }
    if attack_rows:
        overall.update(_attack_figures(attack_rows, first_alert, set(first_alert), r.tokens_before))
    return {"scenarios": per, "overall": overall}


def _benign_figures(accounts: int, alerted: int, days: float) -> dict:
    return {
        "kind": "benign",
        "accounts": accounts,
        "falsely_alerted": alerted,
        "false_alerts_per_10k_per_day": alerted / max(1, accounts) * 10_000 / days,
    }


def _attack_figures(
    rows: list[dict],
    first_alert: dict[str, float],
    listed: set[str],
    tokens_before: dict[str, int],
) -> dict:
    members = {row["account_id"] for row in rows}
    caught = {a for a in members if a in first_alert}
    campaigns: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        campaigns[row["campaign"]].append(row)
    ttd, tokens = [], []
    detected = 0
    for camp, mem in campaigns.items():
        start = min(m["start"] for m in mem)
        hits = [first_alert[m["account_id"]] for m in mem if m["account_id"] in first_alert]
        if hits:
            detected += 1
            ttd.append(min(hits) - start)
            tokens.append(tokens_before.get(camp, 0))
    named = listed | caught
    return {
        "kind": "attack",
        "campaigns": len(campaigns),
        "campaign_recall": detected / len(campaigns),
        "members": len(members),
        "member_recall": len(caught) / len(members),
        "member_precision": len(caught) / len(named) if named else None,
        "ttd_median_s": _pct(ttd, 0.5),
        "ttd_p90_s": _pct(ttd, 0.9),
        "tokens_before_alert_median": _pct([float(t) for t in tokens], 0.5),
    }


def evaluate(
    settings: Settings,
    network: NetworkEnricher,
    scenario: str = "all",
    seed: int = 7,
    accounts: int = 3000,
    days: float = 2.0,
) -> dict:
    """Figures for one scenario (plus the population) or for all of them in one run."""
    names = (*ATTACKS, *BENIGN) if scenario == "all" else (scenario,)
    r = run(settings, network, seed, names, accounts, days)
    result = figures(r)
    result["seed"] = seed
    result["scenario"] = scenario
    return result


def print_report(result: dict) -> None:
    o = result["overall"]
    print(
        f"seed {result['seed']}: {o['events']:,} events over {o['simulated_days']:g} simulated "
        f"days, {o['events_per_s']:,} events/s offline"
    )
    head = f"{'scenario':18s} {'recall':>7s} {'members':>9s} {'precision':>9s} {'TTD med':>9s}"
    print(f"{head} {'TTD p90':>9s} {'tokens before':>14s} {'false/10k/day':>14s}")
    for name, f in sorted(result["scenarios"].items()):
        if f["kind"] == "attack":
            print(
                f"{name:18s} {f['campaign_recall']:7.2f} {f['member_recall']:9.2f} "
                f"{_fmt(f['member_precision'], '9.2f')} {_dur(f['ttd_median_s']):>9s} "
                f"{_dur(f['ttd_p90_s']):>9s} {_fmt(f['tokens_before_alert_median'], '14,.0f')}"
                f" {'':>14s}"
            )
        else:
            print(
                f"{name:18s} {'':7s} {'':9s} {'':9s} {'':9s} {'':9s} {'':14s} "
                f"{f['false_alerts_per_10k_per_day']:14.2f}"
            )
    print(
        f"{'overall':18s} {_fmt(o.get('campaign_recall'), '7.2f')} "
        f"{_fmt(o.get('member_recall'), '9.2f')} {_fmt(o.get('member_precision'), '9.2f')} "
        f"{_dur(o.get('ttd_median_s')):>9s} {_dur(o.get('ttd_p90_s')):>9s} {'':14s} "
        f"{o['false_alerts_per_10k_per_day']:14.2f}"
    )


def print_markdown(results: list[dict]) -> None:
    """One table over several seeds, as the README shows it."""
    seeds = [r["seed"] for r in results]
    print("| scenario | figure | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    print("|---|---|" + "---|" * len(seeds))
    names = sorted({n for r in results for n in r["scenarios"]})
    for name in names:
        rows = [r["scenarios"].get(name, {}) for r in results]
        if rows[0].get("kind") == "attack":
            figures = [
                (
                    "member recall / precision",
                    lambda f: f"{f['member_recall']:.2f} / {_fmt(f['member_precision'], '.2f')}",
                ),
                ("time to detect (median)", lambda f: _dur(f["ttd_median_s"])),
                (
                    "completion tokens before alert",
                    lambda f: _fmt(f["tokens_before_alert_median"], ",.0f"),
                ),
            ]
        else:
            figures = [
                (
                    "false alerts / 10k accounts / day",
                    lambda f: (
                        f"{f['false_alerts_per_10k_per_day']:.2f}"
                        f" ({f['falsely_alerted']} of {f['accounts']:,})"
                    ),
                ),
            ]
        for label, fmt in figures:
            print(f"| `{name}` | {label} | " + " | ".join(fmt(f) for f in rows) + " |")
    for label, fmt in (
        ("campaign recall", lambda o: f"{o.get('campaign_recall', 0):.2f}"),
        (
            "benign false alerts / 10k / day",
            lambda o: (
                f"{o['false_alerts_per_10k_per_day']:.2f} "
                f"({o['benign_falsely_alerted']} of {o['benign_accounts']:,})"
            ),
        ),
        ("events (offline events/s)", lambda o: f"{o['events']:,} ({o['events_per_s']:,}/s)"),
    ):
        print(f"| **overall** | {label} | " + " | ".join(fmt(r["overall"]) for r in results) + " |")


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.0f}m" if seconds < 2 * HOUR else f"{seconds / HOUR:.1f}h"
