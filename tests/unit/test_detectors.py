"""River components of the account detector: scoring never changes what was learned."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as hs
from river import stats

from pipeline.detect.account import AccountDetector
from pipeline.detect.population import SCORED, PopulationBaselines, _Baseline
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


def test_a_copied_cohort_model_is_the_model_river_builds() -> None:
    """_fresh_hst copies a template's trees; river, asked directly, must agree on every
    score through a window pivot and end in the same state."""
    import pickle
    import random

    from river import anomaly

    from pipeline.detect.population import ANOMALY_LIMITS, _fresh_hst

    _fresh_hst(4, 5, 30, 3)  # the template
    copied = _fresh_hst(4, 5, 30, 3)
    built = anomaly.HalfSpaceTrees(4, 5, 30, limits=dict(ANOMALY_LIMITS), seed=3)
    rng = random.Random(1)
    for i in range(100):
        stretch = 3 if i > 80 else 1
        x = {f: rng.uniform(lo, hi * stretch) for f, (lo, hi) in ANOMALY_LIMITS.items()}
        assert copied.score_one(x) == built.score_one(x)
        copied.learn_one(x)
        built.learn_one(x)
    assert copied.score_one(x) > 0
    assert pickle.dumps(copied) == pickle.dumps(built)


def test_a_cohort_model_built_at_warmup_is_the_model_learned_as_windows_came() -> None:
    """CohortAnomaly keeps a cohort's learned inputs until its ``warmup``-th and only then
    builds the model and teaches it them in order: the same model, to the byte, as one
    built at the cohort's first window and taught each input as it came (the layout of
    snapshots before version 8, which must also go on learning)."""
    import pickle
    import random

    from river import anomaly

    from pipeline.detect.population import ANOMALY_LIMITS, CohortAnomaly, _fresh_hst

    def feed(ca: CohortAnomaly, xs: list[dict]) -> None:
        for x in xs:
            ca.learn("5m", "free/new", x)

    rng = random.Random(4)
    xs = [{f: rng.uniform(0, 3 * hi) for f, (_, hi) in ANOMALY_LIMITS.items()} for _ in range(300)]
    deferred = CohortAnomaly(seed=2, warmup=40, window_size=30, learn_every=3)
    eager = CohortAnomaly(seed=2, warmup=40, window_size=30, learn_every=3)
    hst = _fresh_hst(eager.n_trees, eager.height, eager.window_size, eager.seed)
    eager._models[("5m", "free/new")] = [anomaly.QuantileFilter(hst, q=eager.q), 0, 0]
    feed(deferred, xs[:119])  # 39 inputs learned: one short of warmup
    feed(eager, xs[:119])
    assert len(deferred._models[("5m", "free/new")][0]) == 39 * len(ANOMALY_LIMITS)
    assert deferred.score("5m", "free/new", xs[0]) is None
    feed(deferred, xs[119:120])  # the 40th: built, and scoring
    assert deferred.score("5m", "free/new", xs[0]) is not None
    feed(deferred, xs[120:])
    feed(eager, xs[119:])
    assert pickle.dumps(deferred._models) == pickle.dumps(eager._models)
    probe = {f: 1e9 for f in ANOMALY_LIMITS}  # every feature at its cap
    assert deferred.score("5m", "free/new", probe) == eager.score("5m", "free/new", probe)
    assert deferred.score("5m", "free/new", probe)[1]


def test_trees_are_copied_in_c_as_in_python() -> None:
    """``_hot.clone`` (what _fresh_hst uses when built) against ``_clone``, its reference:
    the same trees and the same depth-first node lists, attribute order included."""
    import pickle

    from pipeline import _hot
    from pipeline.detect.population import _TEMPLATES, _clone, _fresh_hst

    _fresh_hst(3, 4, 30, 9)
    template = _TEMPLATES[(3, 4, 30, 9)]
    for tree in template.trees:
        tree.l_mass, tree.r_mass = 5, 7  # masses in the template: the copies zero them
        c_nodes: list = []
        py_nodes: list = []
        c, py = _hot.clone(tree, c_nodes), _clone(tree, py_nodes)
        assert pickle.dumps((c, c_nodes)) == pickle.dumps((py, py_nodes))
        assert len(c_nodes) == 2**5 - 1 and c_nodes[0] is c
        assert c.l_mass == c.r_mass == 0 and c.feature == tree.feature
        assert [list(vars(n)) for n in c_nodes] == [list(vars(n)) for n in py_nodes]


def test_a_copied_cohort_model_holds_no_more_memory_than_rivers() -> None:
    """Copies keep river's dict layout (branches set attribute by attribute, leaves by one
    dict update): within a tenth of river's own model; plain instance dicts made them about
    a quarter larger."""
    import tracemalloc

    from river import anomaly

    from pipeline.detect.population import ANOMALY_LIMITS, _fresh_hst

    _fresh_hst(10, 8, 250, 5)  # the template, outside the measurement

    def held(make) -> int:
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            model = make()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        assert model.trees
        return sum(s.size_diff for s in after.compare_to(before, "filename"))

    def built() -> anomaly.HalfSpaceTrees:
        hst = anomaly.HalfSpaceTrees(10, 8, 250, limits=dict(ANOMALY_LIMITS), seed=5)
        hst.learn_one({f: lo for f, (lo, _) in ANOMALY_LIMITS.items()})
        return hst

    assert held(lambda: _fresh_hst(10, 8, 250, 5)) <= 1.1 * held(built)


@given(
    hs.lists(
        hs.lists(
            hs.sampled_from([0.0, 0.5, 1.0, 3.25]) | hs.floats(0.0, 20.0),
            min_size=len(SCORED),
            max_size=len(SCORED),
        ),
        min_size=1,
        max_size=60,
    ),
    hs.sampled_from([0.01, 0.05, 0.3]),
)
def test_baseline_is_rivers_fading_mean_and_variance(rows, alpha) -> None:
    """_Baseline keeps plain floats; its means and variances are river's to the bit, and
    a version-3 snapshot's river objects load into the same baseline."""
    base = _Baseline(alpha)
    means = [stats.EWMean(fading_factor=alpha) for _ in SCORED]
    variances = [stats.EWVar(fading_factor=alpha) for _ in SCORED]
    for row in rows:
        base.learn(row)
        for m, v, x in zip(means, variances, row, strict=True):
            m.update(x)
            v.update(x)
        assert base.mean == [m.get() for m in means]
        got = [q - m * m for q, m in zip(base.sq, base.mean, strict=True)]
        assert got == [v.get() for v in variances]
    old = _Baseline.__new__(_Baseline)
    old.__setstate__((None, {"means": means, "n": len(rows), "vars": variances}))
    assert (old.alpha, old.mean, old.n) == (alpha, base.mean, base.n)
    for q, q_old in zip(base.sq, old.sq, strict=True):
        assert q_old == pytest.approx(q, rel=1e-12, abs=1e-12)
    assert pickle.loads(pickle.dumps(base)).sq == base.sq
