"""River components of the account detector: scoring never changes what was learned."""

from __future__ import annotations

from pipeline.detect.account import AccountDetector
from pipeline.detect.population import PopulationBaselines
from pipeline.features.windows import AccountState


def test_drift_scoring_leaves_the_detector_untouched_and_fires_on_a_sustained_rise() -> None:
    det = AccountDetector(PopulationBaselines(0.05, 10), z_alert=6, z_learn=4)
    st = AccountState("a")
    for i in range(24):  # a day of ordinary hours around the cohort
        det._drift_learn(st, 0.1 * ((i % 3) - 1))

    def state() -> tuple:
        ph = st.drift
        return (ph._x_mean.n, ph._x_mean.get(), ph._sum_increase, ph._min_increase)

    before = state()
    assert not det._drifting(st, 0.0)
    det._drifting(st, 5.0)  # whatever it answers, scoring must not learn
    assert state() == before
    fired = False
    for _ in range(12):  # the account pulls e^1.5 = 4.5x its cohort's volume, hour after hour
        fired = fired or det._drifting(st, 1.5)
        det._drift_learn(st, 1.5)
    assert fired
