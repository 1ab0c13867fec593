"""Population baselines: is this account's window unusual for accounts like it?

For every view kind (5-minute, 1-hour) and cohort (account tier x age band; accounts with
no record form the ``unknown`` cohort), a fading mean and variance of ``log1p(value)`` per
feature (river ``stats.EWMean`` / ``stats.EWVar``). The baseline follows slow shifts such
as the daily rhythm or a model launch, while a burst is measured against what the cohort
normally does. Heavy-tailed counts become roughly symmetric on the log scale, which is what
makes a z-score meaningful there.

Contract, in the river style: ``score_one`` never changes state; the caller calls
``learn_one`` only for windows that were not flagged, so an attacker cannot teach the
baseline that extraction is normal. A cohort that has learned fewer than ``warmup`` windows
falls back to the partition-wide baseline of the same view kind, and scores nothing while
that is cold too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from river import stats

#: Features whose increase is risky: volume first (a window is only ever flagged when a
#: VOLUME feature is itself unusual), then shape and breadth.
VOLUME = ("requests_per_min", "completion_tokens_per_min")
SCORED = (
    *VOLUME,
    "prompt_tokens_per_min",
    "completion_tokens_per_request",
    "distinct_api_keys",
    "distinct_ips",
    "distinct_networks",
    "template_reuse",
)
MIN_STD = 0.25  # on the log1p scale: never treat a near-constant baseline as infinitely tight


@dataclass(slots=True)
class FeatureZ:
    feature: str
    observed: float
    baseline: float  # the baseline's typical value, back on the natural scale
    z: float


class _Baseline:
    __slots__ = ("means", "n", "vars")

    def __init__(self, alpha: float) -> None:
        self.means = [stats.EWMean(fading_factor=alpha) for _ in SCORED]
        self.vars = [stats.EWVar(fading_factor=alpha) for _ in SCORED]
        self.n = 0

    def learn(self, logs: list[float]) -> None:
        for mean, var, x in zip(self.means, self.vars, logs, strict=True):
            mean.update(x)
            var.update(x)
        self.n += 1

    def z(self, values: dict[str, float], logs: list[float]) -> dict[str, FeatureZ]:
        out = {}
        for f, mean_s, var_s, x in zip(SCORED, self.means, self.vars, logs, strict=True):
            mean = mean_s.get()
            std = max(math.sqrt(max(var_s.get(), 0.0)), MIN_STD)
            out[f] = FeatureZ(f, values[f], math.expm1(mean), (x - mean) / std)
        return out


class PopulationBaselines:
    """Per-(view kind, cohort) baselines of one partition.

    >>> pb = PopulationBaselines(alpha=0.05, warmup=20)
    >>> normal = {f: 1.0 for f in SCORED}
    >>> for _ in range(50):
    ...     pb.learn_one("5m", "pro/established", normal)
    >>> burst = dict(normal, requests_per_min=200.0)
    >>> pb.score_one("5m", "pro/established", burst)["requests_per_min"].z > 6
    True
    >>> bool(pb.score_one("5m", "free/new", burst))  # cold cohort: partition-wide baseline
    True
    >>> pb.score_one("1h", "pro/established", burst)  # cold view kind: nothing yet
    {}
    """

    def __init__(self, alpha: float, warmup: int) -> None:
        self.alpha = alpha
        self.warmup = warmup
        self._cohorts: dict[tuple[str, str], _Baseline] = {}
        self._all: dict[str, _Baseline] = {}

    @staticmethod
    def _logs(values: dict[str, float]) -> list[float]:
        return [math.log1p(values[f]) for f in SCORED]

    def score_one(self, kind: str, cohort: str, values: dict[str, float]) -> dict[str, FeatureZ]:
        """Per-feature z against the cohort (or partition) baseline; {} while warming up."""
        base = self._cohorts.get((kind, cohort))
        if base is None or base.n < self.warmup:
            base = self._all.get(kind)
            if base is None or base.n < self.warmup:
                return {}
        return base.z(values, self._logs(values))

    def learn_one(self, kind: str, cohort: str, values: dict[str, float]) -> None:
        logs = self._logs(values)
        base = self._cohorts.get((kind, cohort))
        if base is None:
            base = self._cohorts[(kind, cohort)] = _Baseline(self.alpha)
        base.learn(logs)
        everyone = self._all.get(kind)
        if everyone is None:
            everyone = self._all[kind] = _Baseline(self.alpha)
        everyone.learn(logs)
