"""Simulated API traffic: a benign population plus labelled extraction scenarios.

Everything is a pure function of the seed and parameters, so a scenario can be replayed
exactly. Benign shapes come from real traffic: per-request prompt and completion token
counts are drawn from the quantiles of the Azure LLM inference trace (``trace_profile``);
per-account rates are heavy-tailed (log-normal), and activity follows a daily rhythm.

Scenarios (ground truth goes to :meth:`Simulation.labels`):

``burst``
    A young, unverified account on rented (hosting) addresses that is quiet, then bursts to
    sustained high volume with long completions, templated prompts and rotating keys.

Events come out in event-time order.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from pipeline.records import Account, RequestEvent
from pipeline.sim.trace_profile import PROFILE

#: Real ISP blocks (residential) and cloud blocks (hosting), checked against the IP data.
RESIDENTIAL_PREFIXES = ("73.15", "24.5", "86.140", "2.8", "93.200", "81.2", "98.207")
HOSTING_PREFIXES = ("52.95.110", "20.1.5", "34.82.10", "5.9.10", "88.198.3", "51.15.4")
BENIGN_AGENTS = (
    "openai-python/1.54.3",
    "anthropic-sdk-python/0.40",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15",
    "langchain/0.3.7",
    "curl/8.5.0",
)
MODELS = ("large-2025-06", "small-2025-06", "code-2025-03")
TIERS = (("free", 0.55), ("pro", 0.35), ("enterprise", 0.10))
_DAY = 86_400.0


def _quantile_sampler(qs: list[int]):
    """Inverse-CDF sampling with linear interpolation between the stored quantiles."""
    n = len(qs) - 1

    def sample(rng: random.Random) -> int:
        u = rng.random() * n
        i = int(u)
        lo, hi = qs[i], qs[min(i + 1, n)]
        return int(lo + (hi - lo) * (u - i))

    return sample


_PROMPT = {s: _quantile_sampler(p["prompt_tokens"]) for s, p in PROFILE.items()}
_COMPLETION = {s: _quantile_sampler(p["completion_tokens"]) for s, p in PROFILE.items()}


def diurnal(ts: float, tz_hours: float = 0.0) -> float:
    """Relative activity (0.25..1.75) at ``ts`` for someone in UTC+tz: peak mid-afternoon."""
    hour = ((ts / 3600.0) + tz_hours) % 24.0
    return 1.0 + 0.75 * math.sin(2 * math.pi * (hour - 8.0) / 24.0)


@dataclass(slots=True)
class Actor:
    """One simulated account and how it behaves."""

    account: Account
    label: str  # "benign" or the scenario name
    rate_per_min: float  # mean rate while active
    service: str  # trace profile: "conv" or "code"
    ips: list[str]
    keys: list[str]
    agent: str
    model: str
    tz_hours: float = 0.0
    start: float = 0.0  # active from (event time)
    end: float = math.inf
    completion_range: tuple[int, int] | None = None  # fixed range instead of the trace
    templates: list[str] = field(default_factory=list)
    diurnal: bool = True
    seq: int = 0


class Simulation:
    """A seeded population plus scenarios over ``[start, start + duration)``."""

    def __init__(
        self,
        seed: int = 7,
        accounts: int = 500,
        start: float = 1_793_606_400.0,  # 2026-11-02T08:00:00Z
        duration: float = 3600.0,
        rate: float = 25.0,
        scenarios: tuple[str, ...] = ("burst",),
        attack_at: float = 1200.0,
    ) -> None:
        self.seed = seed
        self.start = start
        self.end = start + duration
        self.rng = random.Random(seed)
        self.actors: list[Actor] = self._population(accounts, rate)
        for name in scenarios:
            self.actors.extend(_SCENARIOS[name](self, start + attack_at))

    # --- population -------------------------------------------------------------------
    def _ip(self, prefixes: tuple[str, ...]) -> str:
        p = self.rng.choice(prefixes)
        tail = [str(self.rng.randint(1, 254)) for _ in range(4 - p.count(".") - 1)]
        return ".".join([p, *tail])

    def _id(self, kind: str, n: int) -> str:
        return f"{kind}-{hashlib.sha1(f'{self.seed}:{kind}:{n}'.encode()).hexdigest()[:10]}"

    def _population(self, n: int, rate: float) -> list[Actor]:
        rng = self.rng
        weights = [rng.lognormvariate(0.0, 1.1) for _ in range(n)]
        scale = rate * 60.0 / sum(weights)  # mean population rate (events/s) -> per account
        actors = []
        for i, w in enumerate(weights):
            tier = rng.choices([t for t, _ in TIERS], [p for _, p in TIERS])[0]
            acct_id = self._id("acct", i)
            enterprise = tier == "enterprise"
            cloud = enterprise and rng.random() < 0.5  # batch jobs from cloud networks
            ips = [
                self._ip(HOSTING_PREFIXES if cloud else RESIDENTIAL_PREFIXES)
                for _ in range(rng.randint(1, 3))
            ]
            account = Account(
                account_id=acct_id,
                org_id=self._id("org", i),
                created_at=self.start - rng.uniform(20, 900) * _DAY,
                tier=tier,
                country=rng.choice(("US", "GB", "DE", "FR", "IN", "BR", "JP")),
                payment_verified=tier != "free" or rng.random() < 0.6,
                payment_fingerprint=self._id("card", i) if tier != "free" else None,
                rate_limit_rpm={"free": 60, "pro": 600, "enterprise": 6000}[tier],
            )
            actors.append(
                Actor(
                    account=account,
                    label="benign",
                    rate_per_min=w * scale,
                    service="code" if rng.random() < 0.3 else "conv",
                    ips=ips,
                    keys=[self._id(f"key{i}", k) for k in range(rng.randint(1, 2))],
                    agent=rng.choice(BENIGN_AGENTS),
                    model=rng.choice(MODELS),
                    tz_hours=rng.choice((-8.0, -5.0, 0.0, 1.0, 5.5, 9.0)),
                )
            )
        return actors

    # --- output -----------------------------------------------------------------------
    def accounts(self) -> list[Account]:
        return [a.account for a in self.actors]

    def labels(self) -> list[dict]:
        """Ground truth: one row per attacking account (benign accounts are all others)."""
        return [
            {
                "account_id": a.account.account_id,
                "label": "attack",
                "scenario": a.label,
                "start": max(a.start, self.start),
                "end": min(a.end, self.end),
            }
            for a in self.actors
            if a.label != "benign"
        ]

    def events(self) -> Iterator[RequestEvent]:
        """All events of all actors, merged in event-time order (ties by account id)."""
        rng = random.Random(self.seed + 1)
        heap: list[tuple[float, str, int]] = []
        for i, actor in enumerate(self.actors):
            t = self._next(actor, max(actor.start, self.start), rng)
            if t < self.end:
                heap.append((t, actor.account.account_id, i))
        heapq.heapify(heap)
        while heap:
            t, acct_id, i = heapq.heappop(heap)
            actor = self.actors[i]
            yield self._event(actor, t, rng)
            nxt = self._next(actor, t, rng)
            if nxt < min(self.end, actor.end):
                heapq.heappush(heap, (nxt, acct_id, i))

    def _next(self, actor: Actor, t: float, rng: random.Random) -> float:
        """Next arrival of a Poisson process modulated by the daily rhythm (thinning)."""
        peak = actor.rate_per_min / 60.0 * (1.75 if actor.diurnal else 1.0)
        if peak <= 0:
            return math.inf
        while True:
            t += rng.expovariate(peak)
            if t >= self.end:
                return math.inf
            if not actor.diurnal or rng.random() * 1.75 <= diurnal(t, actor.tz_hours):
                return t

    def _event(self, actor: Actor, t: float, rng: random.Random) -> RequestEvent:
        actor.seq += 1
        if actor.completion_range:
            completion = rng.randint(*actor.completion_range)
            prompt = rng.randint(150, 600)
        else:
            completion = _COMPLETION[actor.service](rng)
            prompt = _PROMPT[actor.service](rng)
        if actor.templates:
            fingerprint = rng.choice(actor.templates)
        else:
            fingerprint = f"{rng.getrandbits(64):016x}"
        status = 200 if rng.random() > 0.01 else rng.choice((429, 500, 400))
        return RequestEvent(
            event_id=f"{actor.account.account_id}-{actor.seq}",
            ts=round(t, 3),
            account_id=actor.account.account_id,
            api_key_id=rng.choice(actor.keys),
            ip=rng.choice(actor.ips),
            user_agent=actor.agent,
            endpoint="/v1/chat/completions",
            model=actor.model,
            prompt_tokens=prompt,
            completion_tokens=completion if status == 200 else 0,
            status=status,
            latency_ms=round(40 + completion * 18 * rng.uniform(0.7, 1.3), 1),
            org_id=actor.account.org_id,
            prompt_fingerprint=fingerprint,
            request_bytes=prompt * 4 + 200,
            response_bytes=completion * 4 + 300 if status == 200 else 120,
        )


# --- scenarios --------------------------------------------------------------------------


def _burst(sim: Simulation, at: float) -> list[Actor]:
    """One young, unverified account bursting from hosting addresses with long outputs."""
    rng = sim.rng
    acct_id = sim._id("acct", 10_000_000)
    account = Account(
        account_id=acct_id,
        org_id=sim._id("org", 10_000_000),
        created_at=at - 2 * _DAY,
        tier="free",
        country="US",
        payment_verified=False,
        rate_limit_rpm=60,
    )
    return [
        Actor(
            account=account,
            label="burst",
            rate_per_min=150.0,
            service="conv",
            ips=[sim._ip(HOSTING_PREFIXES) for _ in range(4)],
            keys=[sim._id("key-burst", k) for k in range(3)],
            agent="python-httpx/0.27.0",
            model=MODELS[0],
            start=at,
            completion_range=(1500, 3500),
            templates=[f"tmpl-{rng.getrandbits(32):08x}" for _ in range(6)],
            diurnal=False,
        )
    ]


_SCENARIOS = {"burst": _burst}
SCENARIOS = tuple(_SCENARIOS)
