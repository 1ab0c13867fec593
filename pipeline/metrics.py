"""The closed set of metrics a worker exposes, in Prometheus text format.

Nothing here touches the per-event path: the collector reads the flow's own counters and
the worker's small bookkeeping (last offset per partition, sampled processing times) when
Prometheus scrapes. Every name is listed in :data:`METRICS`; the README documents them and
a test checks that a scrape exposes exactly these families. :func:`scrape` reads them back
from outside, as the demo and the live benchmark do.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:  # annotations only: a reader of the metrics needs no detection core
    from pipeline.flow import Flow

METRICS: dict[str, str] = {
    "xwatch_records_consumed": "records read from api.requests (lines of packed messages count)",
    "xwatch_records_processed": "records that passed the contract and entered detection",
    "xwatch_records_dead_lettered": "records sent to the DLQ, by reason",
    "xwatch_late_events": "events older than the watermark allowed (folded, not dropped)",
    "xwatch_alerts": "alert records emitted, by kind, severity and status",
    "xwatch_consumer_lag": "messages behind the partition's high watermark",
    "xwatch_event_time_lag_seconds": "wall clock minus the partition's event-time watermark",
    "xwatch_processing_seconds": "time to process one message (sampled 1 in 64)",
    "xwatch_state_accounts": "accounts with window state, per partition",
    "xwatch_history_accounts": "accounts with learned history, per partition",
    "xwatch_reference_accounts": "account records held (assigned partitions)",
    "xwatch_network_overrides": "network.intel overrides held",
    "xwatch_partition_warm": "1 once a partition is past its warm-up (alerts possible)",
    "xwatch_ready": "1 when partitions are assigned and their reference data is loaded",
    "xwatch_snapshots_saved": "state snapshots written (one per unit and save)",
    "xwatch_snapshots_restored": "units restored from a snapshot after an assignment",
    "xwatch_snapshots_refused": "snapshots refused (digest or signature check failed)",
    "xwatch_outputs_already_written": "alerts and dead letters not re-sent after a restore",
}


@dataclass(slots=True)
class WorkerStats:
    """What the Faust shell records beside the flow's counters (cheap, in memory)."""

    alerts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    ready: bool = False
    checkpoint: Any = None  # the worker's pipeline.state.Checkpointer

    def count_alert(self, kind: str, severity: str, status: str) -> None:
        key = (kind, severity, status)
        self.alerts[key] = self.alerts.get(key, 0) + 1


class _Collector:
    def __init__(
        self,
        flow: Flow,
        stats: WorkerStats,
        highwater: Callable[[int], int | None],
        clock: Callable[[], float],
    ) -> None:
        self.flow, self.stats, self.highwater, self.clock = flow, stats, highwater, clock

    def collect(self) -> Iterator[Metric]:
        c, flow, stats = self.flow.counters, self.flow, self.stats

        def counter(name: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, METRICS[name], value=value)

        yield counter("xwatch_records_consumed", c.consumed)
        yield counter("xwatch_records_processed", c.processed)
        dl = CounterMetricFamily(
            "xwatch_records_dead_lettered",
            METRICS["xwatch_records_dead_lettered"],
            labels=["reason"],
        )
        for reason, n in sorted(c.dead_letter_reasons.items()):
            dl.add_metric([reason], n)
        yield dl
        yield counter("xwatch_late_events", c.late)
        ck = stats.checkpoint
        if ck is not None:
            yield counter("xwatch_snapshots_saved", ck.saved)
            yield counter("xwatch_snapshots_restored", ck.restored)
            yield counter("xwatch_snapshots_refused", ck.refused)
            yield counter("xwatch_outputs_already_written", ck.already_written)
        alerts = CounterMetricFamily(
            "xwatch_alerts", METRICS["xwatch_alerts"], labels=["kind", "severity", "status"]
        )
        for key, n in sorted(stats.alerts.items()):
            alerts.add_metric(list(key), n)
        yield alerts
        now = self.clock()
        families = {
            name: GaugeMetricFamily(name, METRICS[name], labels=["partition"])
            for name in (
                "xwatch_consumer_lag",
                "xwatch_event_time_lag_seconds",
                "xwatch_state_accounts",
                "xwatch_history_accounts",
                "xwatch_partition_warm",
            )
        }
        for p, sh in sorted(flow.shards.items()):
            label = [str(p)]
            high = self.highwater(p)
            if high is not None and sh.next_offset:
                families["xwatch_consumer_lag"].add_metric(label, max(0, high - sh.next_offset))
            if sh.windows.max_ts is not None:
                families["xwatch_event_time_lag_seconds"].add_metric(label, now - sh.windows.max_ts)
            families["xwatch_state_accounts"].add_metric(label, len(sh.windows.accounts))
            families["xwatch_history_accounts"].add_metric(
                label, sum(1 for st in sh.windows.accounts.values() if st.views)
            )
            warm = (
                sh.windows.closed_through is not None
                and sh.first_index is not None
                and (sh.windows.closed_through - sh.first_index >= sh.warm_from)
            )
            families["xwatch_partition_warm"].add_metric(label, float(warm))
        yield from families.values()
        for name, value in (
            ("xwatch_reference_accounts", len(flow.accounts)),
            ("xwatch_network_overrides", len(flow.network.overrides)),
            ("xwatch_ready", float(stats.ready)),
        ):
            yield GaugeMetricFamily(name, METRICS[name], value=value)


class WorkerMetrics:
    """A private registry with the collector and the processing-time histogram."""

    SAMPLE = 64  # time one message in this many

    def __init__(
        self,
        flow: Flow,
        stats: WorkerStats,
        highwater: Callable[[int], int | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(flow, stats, highwater, clock))
        self.processing = Histogram(
            "xwatch_processing_seconds",
            METRICS["xwatch_processing_seconds"],
            buckets=(1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def samples(text: str) -> dict[str, list[float]]:
    """Each sample's values by sample name (one per label set), from Prometheus text as a
    worker's /metrics serves it; a counter's samples are named ``<name>_total``.

    >>> samples('# TYPE x counter\\nx_total{a="1"} 2.0\\nx_total{a="2"} 3.0\\n')
    {'x_total': [2.0, 3.0]}
    """
    out: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample.value)
    return out


def scrape(port: int, host: str = "127.0.0.1") -> dict[str, list[float]] | None:
    """:func:`samples` of the worker's /metrics at ``host:port``; None while it does not
    answer."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=2.0) as resp:
            return samples(resp.read().decode())
    except (OSError, ValueError):
        return None
