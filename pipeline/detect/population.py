"""Population baselines: is this account's window unusual for accounts like it?

Each cohort (account tier; unknown accounts form their own cohort) keeps, per feature, a
fading mean and variance of ``log1p(value)`` (river ``stats.EWMean`` / ``stats.EWVar``),
so the baseline follows slow shifts such as the daily rhythm while a burst is measured
against what the cohort normally does. Heavy-tailed counts become roughly symmetric on the
log scale, which is what makes a z-score meaningful there.

Contract, in the river style: ``score_one`` never changes state; ``learn_one`` is called
by the caller only for windows that were not flagged, so an attacker cannot teach the
baseline that extraction is normal. A cohort that has learned fewer than ``warmup`` windows
falls back to the partition-wide baseline, and scores nothing while that is cold too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from river import stats

#: Features whose *increase* is risky and which enter the z-score. Volume first: a window
#: is only ever flagged when one of VOLUME is itself unusual.
VOLUME = ("requests_per_min", "completion_tokens_per_min")
SCORED = (
    *VOLUME,
    "prompt_tokens_per_min",
    "completion_tokens_per_request",
    "distinct_api_keys",
    "distinct_ips",
    "distinct_networks",
)
_MIN_STD = 0.25  # on the log1p scale: never treat a near-constant baseline as infinitely tight


@dataclass(slots=True)
class FeatureZ:
    feature: str
    observed: float
    baseline: float  # the baseline's typical value, back on the natural scale
    z: float


class _Baseline:
    __slots__ = ("means", "n", "vars")

    def __init__(self, alpha: float) -> None:
        self.means = {f: stats.EWMean(fading_factor=alpha) for f in SCORED}
        self.vars = {f: stats.EWVar(fading_factor=alpha) for f in SCORED}
        self.n = 0

    def learn(self, logs: dict[str, float]) -> None:
        for f, x in logs.items():
            self.means[f].update(x)
            self.vars[f].update(x)
        self.n += 1

    def z(self, values: dict[str, float], logs: dict[str, float]) -> list[FeatureZ]:
        out = []
        for f, x in logs.items():
            mean = self.means[f].get()
            std = max(math.sqrt(max(self.vars[f].get(), 0.0)), _MIN_STD)
            out.append(FeatureZ(f, values[f], math.expm1(mean), (x - mean) / std))
        return out


class PopulationBaselines:
    """Per-cohort baselines of one partition.

    >>> pb = PopulationBaselines(alpha=0.05, warmup=20)
    >>> normal = {f: 1.0 for f in SCORED}
    >>> for _ in range(50):
    ...     pb.learn_one("pro", normal)
    >>> burst = dict(normal, requests_per_min=200.0)
    >>> max(z.z for z in pb.score_one("pro", burst)) > 6
    True
    >>> pb.score_one("enterprise", burst) != []  # cold cohort: partition-wide baseline
    True
    """

    def __init__(self, alpha: float, warmup: int) -> None:
        self.alpha = alpha
        self.warmup = warmup
        self._cohorts: dict[str, _Baseline] = {}
        self._all = _Baseline(alpha)

    @staticmethod
    def _logs(values: dict[str, float]) -> dict[str, float]:
        return {f: math.log1p(values[f]) for f in SCORED}

    def score_one(self, cohort: str, values: dict[str, float]) -> list[FeatureZ]:
        """Per-feature z against the cohort (or partition) baseline; [] while warming up."""
        base = self._cohorts.get(cohort)
        if base is None or base.n < self.warmup:
            base = self._all
            if base.n < self.warmup:
                return []
        return base.z(values, self._logs(values))

    def learn_one(self, cohort: str, values: dict[str, float]) -> None:
        logs = self._logs(values)
        base = self._cohorts.get(cohort)
        if base is None:
            base = self._cohorts[cohort] = _Baseline(self.alpha)
        base.learn(logs)
        self._all.learn(logs)

    def learned(self, cohort: str) -> int:
        base = self._cohorts.get(cohort)
        return 0 if base is None else base.n
