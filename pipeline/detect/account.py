"""Account detector: one score per account view, from population, history and context.

The score of a view (5-minute or 1-hour) is

* **volume**: the larger z-score of requests and completion tokens per minute. It must be
  unusual for the cohort (population baseline) *and*, once the account has a history, for
  the account itself: a heavy user who has always been heavy is not an extraction burst,
  while a quiet account that suddenly pulls long outputs at scale is. A window is never
  flagged unless volume alone reaches ``z_alert / 2`` (``z_alert / 3`` with the signature);
* plus bounded **evidence** of extraction: unusually long outputs, templated prompts, many
  keys/addresses/networks at once, hosting/VPN/Tor/proxy networks, an account with no
  record, without verified payment, or created days ago;
* plus the **extraction signature**: templated prompts pulling unusually long outputs, which
  also lowers the volume gate to a third of ``z_alert`` (a slow ramp is not yet unusual in
  volume, but its shape already is);
* plus **novelty** for an account with a history: most requests from networks or clients
  the account has never used (takeover, leaked key);
* minus **trust**: a verified account older than 90 days (30 for paid tiers) that behaves
  like itself (no novelty) scores 2 less, gets no points for cloud networks, and is
  flagged only for unusually long outputs as well.

The account's own history (fading mean/variance of its log volume per view kind, the
networks and clients it uses) is plain floats and small sets: it exists for every active
account, so it must be small. It learns only from windows scoring below ``z_learn`` (an
attacker's first, not-yet-flagged window must not make its networks "known"); during
warm-up it learns every window.
"""

from __future__ import annotations

import copy
import math
from array import array
from dataclasses import dataclass

from river.drift import PageHinkley as _PH

from pipeline.detect.population import (
    SCORED,
    VOLUME,
    CohortAnomaly,
    PopulationBaselines,
    _Baseline,
)
from pipeline.features.windows import LONG, SHORT, AccountState, View
from pipeline.records import Account, Reason

try:
    from pipeline import _hot
except ImportError:  # installed without a C compiler: the Python reference below
    _hot = None

DETECTOR = "account"
_DAY = 86_400.0
_MIN_SELF_STD = 0.35
# positions in SCORED (and so in a baseline's z-scores) of the features the score reads
_CPR = SCORED.index("completion_tokens_per_request")
_BREADTH = tuple(
    SCORED.index(f) for f in ("distinct_api_keys", "distinct_ips", "distinct_networks")
)
_TEMPLATE = SCORED.index("template_reuse")


@dataclass(slots=True)
class Finding:
    """One scored view. ``flagged`` means the alert policy should see it."""

    view: View
    score: float
    flagged: bool
    reasons: list[Reason]
    context: dict[str, str | bool | float | None]
    detector: str = DETECTOR


def cohort_of(account: Account | None, at: float) -> str:
    """The population an account is compared with: tier and age band, or ``unknown``."""
    if account is None:
        return "unknown"
    age = (at - account.created_at) / _DAY
    band = "new" if age < 7 else "young" if age < 90 else "established"
    return f"{account.tier}/{band}"


def _learn_stats(
    s: array | None, logs: tuple[float, ...], alpha: float, at: float, unit: float
) -> array:
    """Fading mean/variance of the log volumes, faded by *time*, not by view count.

    Layout ``[n, last, mean..., var...]`` (``last``: time of the last learned view). Views
    come every minute while an account is young or running hot and every five minutes
    otherwise, so the weight of a new view is ``1 - (1 - alpha) ** (elapsed / unit)``:
    the history forgets at the same pace in event time whatever the cadence. Exact mean
    while young.

    >>> s = None
    >>> for i in range(20):
    ...     s = _learn_stats(s, (2.0, 5.0), alpha=0.1, at=60.0 * i, unit=60.0)
    >>> [round(z, 1) for z in _self_z(s, (2.0, 9.0))]
    [0.0, 11.4]
    """
    if s is None:
        s = array("d", [0.0] * (2 + 2 * len(logs)))
        s[1] = at - unit
    _fade(s, logs, alpha, at, unit)
    return s


def fade_py(s: array, logs: tuple[float, ...], alpha: float, at: float, unit: float) -> None:
    """:func:`_learn_stats`'s update of an existing ``s``, in place: the Python reference of
    ``_hot.learn_stats`` (``tests/unit/test_hot.py`` compares the two to the bit)."""
    k = len(logs)
    s[0] += 1
    steps = max(1.0, (at - s[1]) / unit)
    s[1] = at
    a = max(1.0 - (1.0 - alpha) ** steps, 1.0 / s[0])
    for i, x in enumerate(logs):
        d = x - s[2 + i]
        s[2 + i] += a * d
        s[2 + k + i] = (1 - a) * (s[2 + k + i] + a * d * d)


_fade = fade_py if _hot is None else _hot.learn_stats


def _self_z(s: array, logs: tuple[float, ...]) -> list[float]:
    k = len(logs)
    return [
        (x - s[2 + i]) / max(math.sqrt(s[2 + k + i]), _MIN_SELF_STD) for i, x in enumerate(logs)
    ]


def _windows(s: array | None) -> int:
    return 0 if s is None else int(s[0])


def _templated(view: View) -> bool:
    """Most prompts of the view repeat a few templates (enough of them to tell)."""
    return view.values["template_reuse"] >= 0.7 and view.counts["fingerprinted"] >= 10


class AccountDetector:
    """Scores account views of one partition against its population and their own history."""

    def __init__(
        self,
        baselines: PopulationBaselines,
        z_alert: float,
        z_learn: float,
        self_alpha: float = 0.05,
        self_min_windows: int = 5,
        history_min_windows: int = 10,
        paid_tiers: frozenset[str] = frozenset({"pro", "team", "business", "enterprise"}),
        anomaly: CohortAnomaly | None = None,
        drift_delta: float = 0.1,
        drift_threshold: float = 8.0,
        drift_min_hours: int = 6,
    ) -> None:
        self.paid_tiers = paid_tiers
        self.baselines = baselines
        self.anomaly = anomaly if anomaly is not None else CohortAnomaly()
        self.z_alert = z_alert
        self.z_learn = z_learn
        self.min_volume_z = z_alert / 2
        self.self_alpha = self_alpha
        self.self_min_windows = self_min_windows
        self.history_min_windows = history_min_windows
        self.drift_delta = drift_delta
        self.drift_threshold = drift_threshold
        self.drift_min_hours = drift_min_hours
        #: called with (view, score, flagged) for every scored view; replay's report uses
        #: it. None (the default) costs nothing.
        self.observer = None

    def score(self, view: View, account: Account | None, warm: bool = True) -> Finding | None:
        """Score, then learn if (and only if) the view looks normal. None while warming up.

        ``warm=False`` (the partition is still in warm-up): nothing is flagged and the
        account's history learns every window, so that heavy-but-steady users have a
        history by the time alerts are allowed. Unless an ``observer`` reads the scores,
        such a view is learned without being scored (None).
        """
        kind = view.kind
        st = view.state
        assert st is not None, "views from the window store carry their account state"
        cohort = cohort_of(account, view.end)
        plogs = self.baselines.logs(view.values)
        logs = (plogs[0], plogs[1])  # log1p of VOLUME, which SCORED starts with
        base = self.baselines.baseline(kind, cohort)
        if base is None:
            self._learn(view, cohort, logs, plogs)
            return None
        zs = base.z(plogs)  # named and explained (FeatureZ) only for a flagged view
        # Each view kind has its own history: a slow ramp poisons the 5-minute history
        # (each step is small) long before it shows in hours. Two hourly windows (learned
        # during the partition's two-hour warm-up) make an hourly history.
        own_stats = st.stats_short if kind == SHORT else st.stats_long
        if _windows(own_stats) >= (self.self_min_windows if kind == SHORT else 2):
            own = _self_z(own_stats, logs)
            volume_z = max(min(zs[0], own[0]), min(zs[1], own[1]))  # VOLUME leads SCORED
        else:
            volume_z = max(zs[0], zs[1])
        # the hour's completion-token volume relative to the cohort's typical one (drift)
        residual = logs[1] - math.log1p(base.typical(1)) if kind == LONG else 0.0
        if not warm and self.observer is None:
            # warming up, and no one reads scores: nothing is flagged and the view is
            # learned whatever it scores, so the evidence and the cohort model's and the
            # drift detector's opinions (which never change state) would change nothing
            self._learn_normal(view, cohort, logs, plogs, volume_z, residual, True)
            return None
        score, trusted, novel = self._evidence(view, account, zs, base)
        score += volume_z
        long_outputs = zs[_CPR] >= 2.0
        signature = long_outputs and _templated(view)
        if signature:  # templated prompts pulling long outputs: what distillation looks like
            score += 1.5
        gate = self.min_volume_z * (2 / 3 if signature else 1.0)
        verdict, drifting = None, False
        if volume_z >= gate / 2:  # a candidate: ask the cohort model and the drift detector
            verdict = self.anomaly.score(kind, cohort, view.values)
            if verdict is not None and verdict[1]:
                score += 1.0
            drifting = kind == LONG and self._drifting(st, residual)
            if drifting:
                score += 1.0
        flagged = (
            warm
            and volume_z >= gate
            and score >= self.z_alert
            and (not trusted or novel or long_outputs)
        )
        if not flagged and (not warm or score < self.z_learn):  # suspicious ones teach nothing
            # nor does a doubtful one teach its networks and clients: an attack that starts
            # inside a view (a leaked key's first minutes) scores below the learning bar at
            # first, and remembering its networks then would hide them as "known" from the
            # views that follow
            remember = not warm or score < self.z_learn / 2
            self._learn_normal(view, cohort, logs, plogs, volume_z, residual, remember)
        if self.observer is not None:
            self.observer(view, score, flagged)
        if not flagged:  # most views: the policy reads only ``flagged``; nothing to explain
            return Finding(view, score, False, [], {}, f"{DETECTOR}-{kind}")
        # the explanation, in score order: top z-scores, then the evidence terms
        reasons: list[Reason] = []
        ctx: dict[str, str | bool | float | None] = {}
        self._evidence(view, account, zs, base, reasons, ctx)  # the same points, with reasons
        if signature:
            reasons.append(Reason("templated_long_outputs", 1.0, 0.0, 1.5))
        if verdict is not None and verdict[1]:
            reasons.append(Reason("cohort_anomaly", verdict[0], verdict[2], 1.0))
        if drifting:
            reasons.append(Reason("usage_drift", view.values[VOLUME[1]], 0.0, 1.0))
        named = base.explain(view.values, plogs, zs).values()
        ranked = sorted(named, key=lambda z: (-z.z, z.feature))[:3]
        reasons[:0] = [Reason(z.feature, z.observed, z.baseline, z.z) for z in ranked if z.z > 0]
        return Finding(view, score, True, reasons, ctx, f"{DETECTOR}-{kind}")

    def _learn_normal(
        self,
        view: View,
        cohort: str,
        logs: tuple[float, ...],
        plogs: list[float],
        volume_z: float,
        residual: float,
        remember: bool,
    ) -> None:
        """What a view that is not flagged teaches: the account's history, the cohort's
        baselines and model unless its volume is already unusual, and for an hour the
        account's drift detector (``residual``)."""
        self._learn(view, cohort, logs, plogs if volume_z < self.z_learn else None, remember)
        if view.kind == LONG:
            self._drift_learn(view.state, residual)

    def _drifting(self, st: AccountState, residual: float) -> bool:
        """Would this hour's residual (log volume minus the cohort's) complete a drift?

        Scored on a copy, so that scoring never changes the detector (the river contract).
        """
        ph = st.drift
        if ph is None or ph._x_mean.n < self.drift_min_hours:
            return False
        probe = copy.deepcopy(ph)
        probe.update(residual)
        return probe.drift_detected

    def _drift_learn(self, st: AccountState, residual: float) -> None:
        """Feed a normal hour to the account's drift detector (river PageHinkley, upward).

        The series is the account's hourly completion-token volume *relative to its
        cohort*, so a new account starts from its cohort's baseline (residual ~ 0), and a
        whole-population shift such as a model launch moves both sides alike.
        """
        if st.drift is None:
            st.drift = _PH(
                min_instances=self.drift_min_hours,
                delta=self.drift_delta,
                threshold=self.drift_threshold,
                mode="up",
            )
        st.drift.update(residual)

    def _learn(
        self,
        view: View,
        cohort: str,
        logs: tuple[float, ...],
        population: list[float] | None,
        remember: bool = True,
    ) -> None:
        """Teach the account's history this view, and the cohort's too if ``population``
        (the view's scored features, ``PopulationBaselines.logs``) is given; its networks
        and clients become known only if ``remember``."""
        st = view.state
        if view.kind == SHORT:
            st.stats_short = _learn_stats(st.stats_short, logs, self.self_alpha, view.end, 60.0)
            st.views += 1
        else:
            st.stats_long = _learn_stats(st.stats_long, logs, self.self_alpha, view.end, 3600.0)
        if remember and (view.values["new_network_share"] or view.values["new_client_share"]):
            st.remember(view.nets, view.agents)
        if population is not None:
            self.baselines.learn_one(view.kind, cohort, view.values, population)
            self.anomaly.learn(view.kind, cohort, view.values)

    def _evidence(
        self,
        view: View,
        account: Account | None,
        zs: list[float],
        base: _Baseline,
        reasons: list[Reason] | None = None,
        ctx: dict[str, str | bool | float | None] | None = None,
    ) -> tuple[float, bool, bool]:
        """Bounded evidence terms: (points, trusted, novel), from the view, its account and
        its z-scores ``zs`` against ``base`` (in SCORED order). With ``reasons`` and ``ctx``
        (for a flagged view only: they cost more than the points), also the reasons for
        the points and the context the alert carries."""
        v = view.values
        points = 0.0
        points += min(2.0, max(0.0, zs[_CPR] - 1.0))
        if _templated(view):
            points += 1.5
            if reasons is not None:
                baseline = base.typical(_TEMPLATE)
                reasons.append(Reason("template_reuse", v["template_reuse"], baseline, 1.5))
        points += min(1.5, 0.5 * sum(zs[i] > 3.0 for i in _BREADTH))
        novel = False
        if view.state.views >= self.history_min_windows:
            new_nets, new_agents = v["new_network_share"], v["new_client_share"]
            if new_nets >= 0.5:
                points += 2.0
                novel = True
                if reasons is not None:
                    reasons.append(Reason("new_network_share", new_nets, 0.0, 2.0))
            if new_agents >= 0.5:
                points += 1.0
                novel = True
                if reasons is not None:
                    reasons.append(Reason("new_client_share", new_agents, 0.0, 1.0))
        risky = v["risky_network_share"]
        if ctx is not None:
            ctx["view"] = view.kind
        trusted = False
        if account is None:
            points += 1.0
            if ctx is not None:
                ctx["account"] = "unknown"
        else:
            age_days = max(0.0, (view.end - account.created_at) / _DAY)
            trusted = account.payment_verified and (
                age_days >= 90 or (account.tier in self.paid_tiers and age_days >= 30)
            )
            if ctx is not None:
                ctx.update(
                    tier=account.tier,
                    account_age_days=round(age_days, 2),
                    payment_verified=account.payment_verified,
                )
            if not account.payment_verified:
                points += 1.0
            if age_days < 7:
                points += 1.0
        if trusted and not novel:
            points -= 2.0
        elif risky >= 0.5:
            points += 1.5
        if ctx is not None:
            ctx["risky_network_share"] = round(risky, 3)
        return points, trusted, novel
