"""Account detector: population and own-history z-scores plus context -> a Finding.

Volume is unusual only when it is unusual both for the cohort (population baseline) and,
once the account has a history, for the account itself: a heavy user who has always been
heavy is not an extraction burst, while a quiet account that suddenly pulls long outputs
at scale is. The own-history baseline is a fading mean/variance of the log volume over
the account's windows (plain floats: it exists for every active account, so it must be
small), learned only from windows that were not flagged.

The score is that volume z-score plus bounded context terms that make the same volume
more suspicious: traffic from hosting/VPN/Tor/proxy networks, an account with no record, no verified
payment, a young account, many keys or addresses at once, unusually long completions.
Context alone never flags a window: the volume z must itself exceed ``min_volume_z``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.detect.population import VOLUME, FeatureZ, PopulationBaselines
from pipeline.features.windows import View
from pipeline.records import Account, Reason

DETECTOR = "population-baseline"
_DAY = 86_400.0


@dataclass(slots=True)
class Finding:
    """One scored view. ``flagged`` means the alert policy should see it."""

    view: View
    score: float
    flagged: bool
    reasons: list[Reason]
    context: dict[str, str | bool | float | None]
    detector: str = DETECTOR


def cohort_of(account: Account | None) -> str:
    """The population an account is compared with: its tier, or ``unknown``."""
    return "unknown" if account is None else account.tier


def context_of(
    account: Account | None, view: View
) -> tuple[float, dict[str, str | bool | float | None]]:
    """Bounded risk bonus from context, and the context itself for the alert."""
    bonus = 0.0
    risky_share = view.values["risky_network_share"]
    if risky_share >= 0.5:
        bonus += 1.5
    if account is None:
        bonus += 1.0
        ctx: dict[str, str | bool | float | None] = {"account": "unknown"}
    else:
        age_days = max(0.0, (view.end - account.created_at) / _DAY)
        if not account.payment_verified:
            bonus += 1.0
        if age_days < 7:
            bonus += 1.0
        ctx = {
            "tier": account.tier,
            "account_age_days": round(age_days, 2),
            "payment_verified": account.payment_verified,
        }
    ctx["risky_network_share"] = round(risky_share, 3)
    return bonus, ctx


class SelfBaseline:
    """Fading mean and variance of one account's log volume features (VOLUME order).

    >>> b = SelfBaseline()
    >>> for _ in range(20):
    ...     b.learn((2.0, 5.0), alpha=0.1)
    >>> [round(z, 1) for z in b.z((2.0, 9.0))]
    [0.0, 11.4]
    """

    __slots__ = ("mean", "n", "var")

    def __init__(self) -> None:
        self.n = 0
        self.mean = [0.0] * len(VOLUME)
        self.var = [0.0] * len(VOLUME)

    def learn(self, logs: tuple[float, ...], alpha: float) -> None:
        self.n += 1
        a = max(alpha, 1.0 / self.n)  # exact mean while young, fading after
        for i, x in enumerate(logs):
            d = x - self.mean[i]
            self.mean[i] += a * d
            self.var[i] = (1 - a) * (self.var[i] + a * d * d)

    def z(self, logs: tuple[float, ...]) -> list[float]:
        return [
            (x - m) / max(math.sqrt(v), _MIN_SELF_STD)
            for x, m, v in zip(logs, self.mean, self.var, strict=True)
        ]


_MIN_SELF_STD = 0.35


class AccountDetector:
    """Scores one account view against its partition's population and its own history."""

    def __init__(
        self,
        baselines: PopulationBaselines,
        z_alert: float,
        z_learn: float,
        self_alpha: float = 0.05,
        self_min_windows: int = 5,
    ) -> None:
        self.baselines = baselines
        self.z_alert = z_alert
        self.z_learn = z_learn
        self.min_volume_z = z_alert / 2
        self.self_alpha = self_alpha
        self.self_min_windows = self_min_windows
        self.history: dict[str, SelfBaseline] = {}

    def score(self, view: View, account: Account | None, warm: bool = True) -> Finding | None:
        """Score, then learn if (and only if) the view looks normal. None while warming up.

        ``warm=False`` (the partition is still in warm-up): nothing is flagged and the
        account's own history learns every window, so that heavy-but-steady users have a
        history by the time alerts are allowed.
        """
        cohort = cohort_of(account)
        zs = self.baselines.score_one(cohort, view.values)
        own = self.history.get(view.account_id)
        if own is None:
            own = self.history[view.account_id] = SelfBaseline()
        logs = tuple(math.log1p(view.values[f]) for f in VOLUME)
        if not zs:
            self.baselines.learn_one(cohort, view.values)
            own.learn(logs, self.self_alpha)
            return None
        pop = {z.feature: z.z for z in zs}
        if own.n >= self.self_min_windows:
            volume_z = max(min(pop[f], s) for f, s in zip(VOLUME, own.z(logs), strict=True))
        else:
            volume_z = max(pop[f] for f in VOLUME)
        breadth = sum(0.5 for z in zs if z.feature not in VOLUME and z.z > 3.0)
        bonus, ctx = context_of(account, view)
        score = volume_z + min(breadth, 1.5) + bonus
        flagged = warm and volume_z >= self.min_volume_z and score >= self.z_alert
        if not flagged:
            own.learn(logs, self.self_alpha)
            if volume_z < self.z_learn:
                self.baselines.learn_one(cohort, view.values)
        return Finding(view, score, flagged, _reasons(zs), ctx)


def _reasons(zs: list[FeatureZ], top: int = 3) -> list[Reason]:
    ranked = sorted(zs, key=lambda z: (-z.z, z.feature))[:top]
    return [Reason(z.feature, z.observed, z.baseline, z.z) for z in ranked if z.z > 0]
