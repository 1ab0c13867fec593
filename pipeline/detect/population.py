"""Population baselines: is this account's window unusual for accounts like it?

For every view kind (5-minute, 1-hour) and cohort (account tier x age band; accounts with
no record form the ``unknown`` cohort), a fading mean and variance of ``log1p(value)`` per
feature, as river's ``stats.EWMean`` / ``stats.EWVar`` compute them (in plain floats: see
:class:`_Baseline`). The baseline follows slow shifts such
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
from array import array
from dataclasses import dataclass

from river import anomaly

try:
    from pipeline import _hot
except ImportError:  # installed without a C compiler: _clone copies the trees
    _hot = None

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
    """Fading mean and variance of each scored feature, exactly as river's
    ``stats.EWMean`` and ``stats.EWVar`` with ``fading_factor=alpha`` compute them (the
    first value sets the means, then ``alpha * x + (1 - alpha) * mean``; the variance is
    the fading mean of ``x * x`` minus the squared fading mean), held as two lists of
    floats: one update of all features is two list comprehensions instead of sixteen calls
    into river, and it is done twice per scored window. ``tests/unit/test_detectors.py``
    compares it with river's, value by value.
    """

    __slots__ = ("alpha", "mean", "n", "sq")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.mean = [0.0] * len(SCORED)
        self.sq = [0.0] * len(SCORED)
        self.n = 0

    def learn(self, logs: list[float]) -> None:
        if self.n == 0:
            self.mean = list(logs)
            self.sq = [x * x for x in logs]
        else:
            self.mean, self.sq = _ew_learn(self.mean, self.sq, logs, self.alpha)
        self.n += 1

    def __setstate__(self, state: tuple[None, dict]) -> None:
        """Also reads the layout of snapshot version 3 (river's EWMean / EWVar objects, in
        ``means`` and ``vars``): same means, the mean of squares rebuilt from the variance
        (to the last bit or so), so a worker keeps its baselines across the upgrade."""
        slots = state[1]
        if "means" in slots:
            self.alpha = slots["means"][0].fading_factor
            self.mean = [m.get() for m in slots["means"]]
            self.sq = [v.get() + m * m for v, m in zip(slots["vars"], self.mean, strict=True)]
            self.n = slots["n"]
        else:
            for name, value in slots.items():
                setattr(self, name, value)

    def z(self, logs: list[float]) -> list[float]:
        """The z-score of each scored feature's ``log1p`` (``logs``, in :data:`SCORED`
        order): every scored view needs these numbers, and only a flagged one needs them
        named and explained (:meth:`explain`)."""
        return _zs(self.mean, self.sq, logs, MIN_STD)

    def typical(self, i: int) -> float:
        """The typical value of scored feature ``i``, back on the natural scale."""
        return math.expm1(self.mean[i])

    def explain(
        self, values: dict[str, float], logs: list[float], zs: list[float] | None = None
    ) -> dict[str, FeatureZ]:
        """:meth:`z` (or ``zs``, its result) with each feature's observed and typical value."""
        if zs is None:
            zs = self.z(logs)
        return {
            f: FeatureZ(f, values[f], self.typical(i), z)
            for i, (f, z) in enumerate(zip(SCORED, zs, strict=True))
        }


def ew_learn_py(
    mean: list[float], sq: list[float], logs: list[float], alpha: float
) -> tuple[list[float], list[float]]:
    """The fading means of the values and of their squares after ``logs``: the Python
    reference of ``_hot.ew_learn``, which :class:`_Baseline` uses when the C hot path is
    built (``tests/unit/test_hot.py`` compares the two to the bit)."""
    b = 1 - alpha
    return (
        [alpha * x + b * m for x, m in zip(logs, mean, strict=True)],
        [alpha * (x * x) + b * q for x, q in zip(logs, sq, strict=True)],
    )


def zs_py(mean: list[float], sq: list[float], logs: list[float], min_std: float) -> list[float]:
    """z of each of ``logs`` against its fading mean and variance, the standard deviation
    at least ``min_std``: the Python reference of ``_hot.zs``."""
    out = []
    sqrt = math.sqrt
    for m, q, x in zip(mean, sq, logs, strict=True):
        var = q - m * m
        # max(sqrt(max(var, 0)), min_std), NaN included, without two builtin calls
        std = sqrt(0.0 if var < 0.0 else var)
        if std < min_std:
            std = min_std
        out.append((x - m) / std)
    return out


# every scored view calls both (a few microseconds each in Python, a tenth of that in C)
_ew_learn = ew_learn_py if _hot is None else _hot.ew_learn
_zs = zs_py if _hot is None else _hot.zs


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
    def logs(values: dict[str, float]) -> list[float]:
        """The scored features on the baselines' scale (``log1p``), in :data:`SCORED` order:
        what ``score_one`` and ``learn_one`` take as ``logs`` when the caller has them."""
        return [math.log1p(values[f]) for f in SCORED]

    def baseline(self, kind: str, cohort: str) -> _Baseline | None:
        """The baseline that scores ``(kind, cohort)``: the cohort's, or while it has
        learned fewer than ``warmup`` windows the partition's; None while that is cold too."""
        base = self._cohorts.get((kind, cohort))
        if base is None or base.n < self.warmup:
            base = self._all.get(kind)
            if base is None or base.n < self.warmup:
                return None
        return base

    def score_one(
        self, kind: str, cohort: str, values: dict[str, float], logs: list[float] | None = None
    ) -> dict[str, FeatureZ]:
        """Per-feature z against the cohort (or partition) baseline; {} while warming up."""
        base = self.baseline(kind, cohort)
        if base is None:
            return {}
        return base.explain(values, self.logs(values) if logs is None else logs)

    def learn_one(
        self, kind: str, cohort: str, values: dict[str, float], logs: list[float] | None = None
    ) -> None:
        if logs is None:
            logs = self.logs(values)
        base = self._cohorts.get((kind, cohort))
        if base is None:
            base = self._cohorts[(kind, cohort)] = _Baseline(self.alpha)
        base.learn(logs)
        everyone = self._all.get(kind)
        if everyone is None:
            everyone = self._all[kind] = _Baseline(self.alpha)
        everyone.learn(logs)


#: Inputs of the cohort anomaly model, on the log1p scale, with fixed plausible ranges.
#: Fixed limits (rather than a streaming min-max scaler) keep a sustained burst from
#: stretching the scale until it looks normal.
ANOMALY_LIMITS: dict[str, tuple[float, float]] = {
    "requests_per_min": (0.0, math.log1p(5_000.0)),
    "completion_tokens_per_min": (0.0, math.log1p(5_000_000.0)),
    "prompt_tokens_per_min": (0.0, math.log1p(5_000_000.0)),
    "completion_tokens_per_request": (0.0, math.log1p(100_000.0)),
    "distinct_api_keys": (0.0, math.log1p(200.0)),
    "distinct_ips": (0.0, math.log1p(2_000.0)),
    "distinct_networks": (0.0, math.log1p(1_000.0)),
    "template_reuse": (0.0, math.log1p(1.0)),
    "risky_network_share": (0.0, math.log1p(1.0)),
    "interarrival_cv": (0.0, math.log1p(10.0)),
}


#: (feature, largest value) of ANOMALY_LIMITS on the natural scale: values are clipped to it
_CAPS = tuple((f, math.expm1(hi)) for f, (_, hi) in ANOMALY_LIMITS.items())
_NAMES = tuple(ANOMALY_LIMITS)

#: The cohort models' HalfSpaceTrees: trees, their height, and the reference window.
HST_TREES, HST_HEIGHT, HST_WINDOW = 10, 8, 250

#: Per process: one river-built HalfSpaceTrees per (n_trees, height, window_size, seed),
#: whose trees every new cohort model of those settings copies (see _fresh_hst).
_TEMPLATES: dict[tuple[int, int, int, int], anomaly.HalfSpaceTrees] = {}


def _clone(node, nodes: list) -> object:
    """A copy of a river padded-tree node and its subtree with zero masses; ``nodes``
    receives the copies in depth-first order (river's ``iter_dfs``)."""
    new = object.__new__(type(node))
    nodes.append(new)
    d = node.__dict__
    if "children" in d:  # a branch: attributes set one by one, in river's order, as its
        for name, value in d.items():  # __init__ does (the copies then share their keys)
            if name == "children":
                value = tuple(_clone(c, nodes) for c in value)
            elif name in ("l_mass", "r_mass"):
                value = 0
            setattr(new, name, value)
    else:  # a leaf: one update of its dict, as river's Leaf.__init__ does
        new.__dict__.update(dict(d, l_mass=0, r_mass=0))
    return new


def _new_hst(n_trees: int, height: int, window_size: int, seed: int) -> anomaly.HalfSpaceTrees:
    return anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size,
                                  limits=dict(ANOMALY_LIMITS), seed=seed)  # fmt: skip


def _template(n_trees: int, height: int, window_size: int, seed: int) -> anomaly.HalfSpaceTrees:
    """The process's river-built HalfSpaceTrees of these settings (built on the first
    call), whose trees every new model of these settings copies."""
    key = (n_trees, height, window_size, seed)
    template = _TEMPLATES.get(key)
    if template is None:
        template = _TEMPLATES[key] = _new_hst(n_trees, height, window_size, seed)
        template.learn_one({f: lo for f, (lo, _) in ANOMALY_LIMITS.items()})  # builds the trees
    return template


def _fresh_hst(n_trees: int, height: int, window_size: int, seed: int) -> anomaly.HalfSpaceTrees:
    """A new HalfSpaceTrees over :data:`ANOMALY_LIMITS`, with its trees already built.

    river builds an HST's random trees on its first ``learn_one``, in Python: ~20 ms per
    model at 10 trees of height 8 (5,110 nodes), paid by every new cohort of every
    partition. The trees depend only on the seed, the height and the limits, which every
    cohort model shares, so the first model of a process is built by river and kept as a
    template, and later ones copy its nodes with zero masses and take its RNG state: the
    model river would have built, in a third of the time (``tests/unit/test_detectors.py``
    compares the two through learning and scoring).
    """
    template = _template(n_trees, height, window_size, seed)
    hst = _new_hst(n_trees, height, window_size, seed)
    hst.trees, hst._tree_nodes = [], []
    clone = _clone if _hot is None else _hot.clone  # the same copy, in C: twice as fast
    for tree in template.trees:
        nodes: list = []
        hst.trees.append(clone(tree, nodes))
        hst._tree_nodes.append(nodes)
    hst.rng.setstate(template.rng.getstate())
    return hst


class CohortAnomaly:
    """River anomaly models over account-window feature vectors, one per (kind, cohort).

    Each model is ``QuantileFilter(HalfSpaceTrees(...), q)``: the trees score how isolated
    a window is from the cohort's recent normal windows; the filter keeps a running
    ``q``-quantile of the scores of learned windows, so "anomalous" means "beyond the
    cohort's usual ``q``", whatever the cohort and the season. Contract: ``score`` never
    changes state; ``learn`` is called only for windows that were not flagged (and the
    filter itself does not learn the trees from windows above its threshold). Learning is
    subsampled (every ``learn_every``-th normal window of the cohort, deterministic),
    because a cohort produces far more normal windows than the trees need. A model scores
    nothing until it has learned ``warmup`` windows (at least one full reference window).

    Until then nothing reads the model, so it is not built: a cohort keeps the inputs it
    has learned, in order, in an array (80 bytes each), and the model is made and taught
    them one by one when the ``warmup``-th arrives. River's learning is deterministic, so
    this is the model that learning each input as it came would have made
    (``tests/unit/test_detectors.py`` compares the two). A model is 5,110 tree nodes (about
    2 MB, and 5 ms to copy); a cold start (a new worker, a replay) makes one per view kind,
    cohort and partition, most of which would not score anything for a long while.

    >>> ca = CohortAnomaly(seed=1, warmup=50, window_size=50)
    >>> normal = {f: 1.0 for f in ANOMALY_LIMITS}
    >>> for i in range(400):
    ...     ca.learn("5m", "free/new", dict(normal, requests_per_min=1.0 + (i % 7) / 7))
    >>> ca.score("5m", "free/new", normal)[1]
    False
    >>> ca.score("5m", "free/new", dict(normal, requests_per_min=900.0, distinct_ips=300.0))[1]
    True
    >>> ca.score("1h", "free/new", normal)  # nothing learned for this kind: no opinion
    """

    def __init__(
        self,
        seed: int = 0,
        q: float = 0.995,
        warmup: int = 200,
        learn_every: int = 4,
        n_trees: int = HST_TREES,
        height: int = HST_HEIGHT,
        window_size: int = HST_WINDOW,
    ) -> None:
        self.seed = seed
        self.q = q
        self.warmup = max(warmup, window_size, 1)  # the trees need a full reference window
        self.learn_every = learn_every
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        # -> [filter, normal seen, learned]; until ``warmup`` learned, the learned inputs
        # (array('d'), ANOMALY_LIMITS order) in the filter's place
        self._models: dict[tuple[str, str], list] = {}

    @staticmethod
    def prepare(
        seed: int, n_trees: int = HST_TREES, height: int = HST_HEIGHT, window_size: int = HST_WINDOW
    ) -> None:
        """Build now the river trees that this process's models of these settings copy
        (:func:`_fresh_hst`, which otherwise builds them at the first model). River builds
        them in Python, in 20 to 80 ms depending on the machine; a flow asks for them when
        it is made, as its enricher loads the network tables, so that neither the first
        event of a partition nor a cohort's first warm-up stalls the event path for them."""
        _template(n_trees, height, window_size, seed)

    @staticmethod
    def _xs(values: dict[str, float]) -> list[float]:
        """The model's inputs: each feature of :data:`ANOMALY_LIMITS`, clipped to its
        range, on the log1p scale, in that order (what a cohort keeps until it is built)."""
        log1p = math.log1p
        return [log1p(min(max(values[f], 0.0), cap)) for f, cap in _CAPS]

    @staticmethod
    def _x(xs: list[float] | array) -> dict[str, float]:
        """:meth:`_xs`'s values by feature name, as river's models take them."""
        return dict(zip(_NAMES, xs, strict=True))

    def _build(self, pending: array) -> anomaly.QuantileFilter:
        """The cohort's model, taught the ``pending`` inputs in the order they came."""
        hst = _fresh_hst(self.n_trees, self.height, self.window_size, self.seed)
        qf = anomaly.QuantileFilter(hst, q=self.q)
        width = len(_NAMES)
        for i in range(0, len(pending), width):
            qf.learn_one(self._x(pending[i : i + width]))
        return qf

    def score(
        self, kind: str, cohort: str, values: dict[str, float]
    ) -> tuple[float, bool, float] | None:
        """(score, beyond the cohort's quantile, that quantile); None while warming up."""
        entry = self._models.get((kind, cohort))
        if entry is None or entry[2] < self.warmup:
            return None
        qf = entry[0]
        s = qf.score_one(self._x(self._xs(values)))
        threshold = qf.quantile.get()
        return s, s > threshold, threshold

    def learn(self, kind: str, cohort: str, values: dict[str, float]) -> None:
        entry = self._models.get((kind, cohort))
        if entry is None:
            entry = self._models[(kind, cohort)] = [array("d"), 0, 0]
        entry[1] += 1
        if entry[1] % self.learn_every == 0:
            model = entry[0]
            entry[2] += 1
            if type(model) is not array:
                model.learn_one(self._x(self._xs(values)))
                return
            model.extend(self._xs(values))
            if entry[2] >= self.warmup:
                entry[0] = self._build(model)
