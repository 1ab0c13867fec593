"""Simulated API traffic: a benign population plus labelled scenarios.

Everything is a pure function of the seed and parameters, so a scenario replays exactly.
Benign shapes come from real traffic: per-request prompt and completion token counts are
drawn from the quantiles of the Azure LLM inference trace (``trace_profile``), per-account
rates are heavy-tailed (log-normal) and activity follows each account's daily rhythm.

An :class:`Actor` is one stream of requests on one account, described by time
:class:`Phase` s (rate, possibly ramping; addresses; keys; client; output lengths;
prompt templates). Several actors may share an account (a leaked key is used by others
while the owner goes on as before).

Attack scenarios (``label = "attack"``; ground truth in :meth:`Simulation.labels`):

``burst``      a young, unverified account on rented addresses bursts to sustained high
               volume with long completions, templated prompts and rotating keys;
``low_slow``   an account on residential proxies ramps from 1 to 30 requests/min over
               a day and a half, 24/7, templated prompts, long outputs;
``hydra``      300 young accounts ("hydra cluster"), each far under its rate limit, rotating
               keys and shared hosting/proxy addresses, sharing prompt templates and a few
               payment fingerprints, active 24/7, starting within half an hour;
``hydra_paraphrased``  300 accounts created the same day, each under its limits, that share
               nothing a template or payment link would catch: every account paraphrases
               its own prompts and none has payment details; they share a pool of hosting
               and proxy addresses and one HTTP client, and start within half an hour;
``takeover``   an established account is taken over: new networks, new client, 40x volume;
``key_leak``   one key of an established account is used from dozens of networks.

Benign hard negatives (``label = "benign"``, must stay quiet):

``enterprise_batch``  steady high-volume templated batch jobs from cloud networks;
``eval_harness``      periodic 20-minute evaluation bursts from the cloud, templated;
``model_launch``      every account shifts to a newly launched model at 1.6x volume;
``university_lab``    40 accounts behind one NAT address;
diurnal heavy users are part of the population itself (heavy-tailed rates).
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

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
LAUNCH_MODEL = "large-2026-11"
TIERS = (("free", 0.55), ("pro", 0.35), ("enterprise", 0.10))
DAY = 86_400.0
HOUR = 3600.0


def _quantile_sampler(qs: list[int]) -> Callable[[random.Random], int]:
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
    hour = ((ts / HOUR) + tz_hours) % 24.0
    return 1.0 + 0.75 * math.sin(2 * math.pi * (hour - 8.0) / 24.0)


@dataclass(slots=True)
class Phase:
    """How an actor behaves over ``[start, end)``. Rates are requests per minute."""

    start: float
    end: float
    rate: float
    ips: list[str]
    keys: list[str]
    agent: str
    model: str
    service: str = "conv"  # trace profile for token counts
    rate_end: float | None = None  # linear ramp from ``rate`` to this at ``end``
    diurnal: bool = True
    tz_hours: float = 0.0
    completion_range: tuple[int, int] | None = None  # instead of the trace
    prompt_range: tuple[int, int] | None = None
    templates: list[str] = field(default_factory=list)
    error_rate: float = 0.01

    def rate_at(self, t: float) -> float:
        base = self.rate
        if self.rate_end is not None and self.end > self.start:
            base += (self.rate_end - self.rate) * (t - self.start) / (self.end - self.start)
        return base * (diurnal(t, self.tz_hours) if self.diurnal else 1.0)

    def peak(self) -> float:
        top = max(self.rate, self.rate_end or 0.0)
        return top * (1.75 if self.diurnal else 1.0)


@dataclass(slots=True)
class Actor:
    """One stream of requests on one account, phase after phase (sorted, non-overlapping)."""

    account: Account
    phases: list[Phase]
    scenario: str = "population"
    label: str = "benign"  # "attack" or "benign"
    campaign: str | None = None  # attacks: the group the account belongs to
    attack_start: float | None = None
    seq: int = 0
    stream: int = 0  # distinguishes event ids of several actors on one account


class Simulation:
    """A seeded population plus scenarios over ``[start, start + duration)``."""

    def __init__(
        self,
        seed: int = 7,
        accounts: int = 500,
        start: float = 1_793_606_400.0,  # 2026-11-02T08:00:00Z
        duration: float = HOUR,
        rate: float = 25.0,
        scenarios: tuple[str, ...] = ("burst",),
        attack_at: float = 1200.0,
    ) -> None:
        self.seed = seed
        self.start = start
        self.end = start + duration
        self.rng = random.Random(seed)
        self.actors: list[Actor] = self._population(accounts, rate)
        self.population = len(self.actors)
        self.launched_at: float | None = None  # set by the model_launch scenario
        for name in scenarios:
            self.actors.extend(SCENARIOS[name](self, start + attack_at))

    # --- helpers ----------------------------------------------------------------------
    def ip(self, prefixes: tuple[str, ...]) -> str:
        p = self.rng.choice(prefixes)
        tail = [str(self.rng.randint(1, 254)) for _ in range(4 - p.count(".") - 1)]
        return ".".join([p, *tail])

    def id(self, kind: str, n: int) -> str:
        return f"{kind}-{hashlib.sha1(f'{self.seed}:{kind}:{n}'.encode()).hexdigest()[:10]}"

    def templates(self, kind: str, n: int) -> list[str]:
        return [f"tmpl-{self.id(kind, i)[-10:]}" for i in range(n)]

    def account(self, n: int, tier: str, age_days: float, verified: bool, **kw) -> Account:
        return Account(
            account_id=self.id("acct", n),
            org_id=kw.pop("org_id", None) or self.id("org", n),
            created_at=self.start - age_days * DAY,
            tier=tier,
            country=kw.pop("country", "US"),
            payment_verified=verified,
            payment_fingerprint=kw.pop("payment_fingerprint", None),
            rate_limit_rpm={"free": 60, "pro": 600, "enterprise": 6000}.get(tier, 60),
            **kw,
        )

    def whole_run(self, **kw) -> Phase:
        return Phase(start=self.start, end=self.end, **kw)

    def _population(self, n: int, rate: float) -> list[Actor]:
        rng = self.rng
        weights = [rng.lognormvariate(0.0, 1.1) for _ in range(n)]
        scale = rate * 60.0 / sum(weights)  # mean population rate (events/s) -> per account
        actors = []
        for i, w in enumerate(weights):
            tier = rng.choices([t for t, _ in TIERS], [p for _, p in TIERS])[0]
            account = self.account(
                i,
                tier,
                age_days=rng.uniform(20, 900),
                verified=tier != "free" or rng.random() < 0.6,
                country=rng.choice(("US", "GB", "DE", "FR", "IN", "BR", "JP")),
                payment_fingerprint=self.id("card", i) if tier != "free" else None,
            )
            cloud = tier == "enterprise" and rng.random() < 0.5
            prefixes = HOSTING_PREFIXES if cloud else RESIDENTIAL_PREFIXES
            phase = self.whole_run(
                rate=w * scale,
                ips=[self.ip(prefixes) for _ in range(rng.randint(1, 3))],
                keys=[self.id(f"key{i}", k) for k in range(rng.randint(1, 2))],
                agent=rng.choice(BENIGN_AGENTS),
                model=rng.choice(MODELS),
                service="code" if rng.random() < 0.3 else "conv",
                tz_hours=rng.choice((-8.0, -5.0, 0.0, 1.0, 5.5, 9.0)),
            )
            actors.append(Actor(account, [phase]))
        return actors

    def established(self, n: int, min_rate: float = 0.3, max_rate: float = 5.0) -> list[Actor]:
        """``n`` population actors that are old, verified, residential, of moderate rate."""
        chosen = []
        for actor in self.actors[: self.population]:
            p = actor.phases[0]
            acct = actor.account
            if (
                actor.scenario == "population"
                and acct.payment_verified
                and self.start - acct.created_at > 90 * DAY
                and min_rate <= p.rate <= max_rate
                and not p.ips[0].startswith(HOSTING_PREFIXES)
            ):
                chosen.append(actor)
            if len(chosen) == n:
                break
        return chosen

    # --- output -----------------------------------------------------------------------
    def accounts(self) -> list[Account]:
        seen: dict[str, Account] = {}
        for a in self.actors:
            seen.setdefault(a.account.account_id, a.account)
        return list(seen.values())

    def labels(self) -> list[dict]:
        """Ground truth for every account in a scenario (population accounts are benign).

        Attack rows carry the campaign and the attack's start; benign hard negatives carry
        their scenario so false alerts can be attributed to it.
        """
        rows: dict[str, dict] = {}
        for a in self.actors:
            if a.scenario == "population":
                continue
            row = rows.get(a.account.account_id)
            if row is not None and row["label"] == "attack":
                continue
            rows[a.account.account_id] = {
                "account_id": a.account.account_id,
                "label": a.label,
                "scenario": a.scenario,
                "campaign": a.campaign,
                "start": a.attack_start if a.attack_start is not None else self.start,
                "end": self.end,
            }
        return list(rows.values())

    def events(self) -> Iterator[RequestEvent]:
        """All events of all actors, merged in event-time order (ties by actor)."""
        rng = random.Random(self.seed + 1)
        heap: list[tuple[float, int]] = []
        for i, actor in enumerate(self.actors):
            t = self._next(actor, self.start, rng)
            if t < self.end:
                heap.append((t, i))
        heapq.heapify(heap)
        while heap:
            t, i = heapq.heappop(heap)
            actor = self.actors[i]
            yield self._event(actor, t, rng)
            nxt = self._next(actor, t, rng)
            if nxt < self.end:
                heapq.heappush(heap, (nxt, i))

    def _next(self, actor: Actor, t: float, rng: random.Random) -> float:
        """Next arrival of a Poisson process with a time-varying rate (thinning)."""
        for phase in actor.phases:
            if phase.end <= t:
                continue
            t = max(t, phase.start)
            peak = phase.peak() / 60.0
            if peak <= 0:
                continue
            while True:
                t += rng.expovariate(peak)
                if t >= phase.end:
                    break
                if rng.random() * peak <= phase.rate_at(t) / 60.0:
                    return t
        return math.inf

    def _event(self, actor: Actor, t: float, rng: random.Random) -> RequestEvent:
        phase = next(p for p in actor.phases if p.start <= t < p.end)
        actor.seq += 1
        if phase.completion_range:
            completion = rng.randint(*phase.completion_range)
        else:
            completion = _COMPLETION[phase.service](rng)
        if phase.prompt_range:
            prompt = rng.randint(*phase.prompt_range)
        else:
            prompt = _PROMPT[phase.service](rng)
        fingerprint = (
            rng.choice(phase.templates) if phase.templates else f"{rng.getrandbits(64):016x}"
        )
        ok = rng.random() > phase.error_rate
        status = 200 if ok else rng.choice((429, 500, 400))
        acct = actor.account
        return RequestEvent(
            event_id=f"{acct.account_id}-{actor.stream}-{actor.seq}",
            ts=round(t, 3),
            account_id=acct.account_id,
            api_key_id=rng.choice(phase.keys),
            ip=rng.choice(phase.ips),
            user_agent=phase.agent,
            endpoint="/v1/chat/completions",
            model=phase.model,
            prompt_tokens=prompt,
            completion_tokens=completion if ok else 0,
            status=status,
            latency_ms=round(40 + completion * 18 * rng.uniform(0.7, 1.3), 1),
            org_id=acct.org_id,
            prompt_fingerprint=fingerprint,
            request_bytes=prompt * 4 + 200,
            response_bytes=completion * 4 + 300 if ok else 120,
        )


# --- attack scenarios -------------------------------------------------------------------


def _burst(sim: Simulation, at: float, n: int = 0) -> list[Actor]:
    """One young, unverified account pulling long outputs at 150 requests/min from rented
    addresses (``n`` numbers further such accounts: the latency benchmark uses several)."""
    acct = sim.account(10_000_000 + n, "free", age_days=(sim.start - at) / DAY + 2, verified=False)
    phase = Phase(
        start=at,
        end=sim.end,
        rate=150.0,
        ips=[sim.ip(HOSTING_PREFIXES) for _ in range(4)],
        keys=[sim.id("key-burst", 3 * n + k) for k in range(3)],
        agent="python-httpx/0.27.0",
        model=MODELS[0],
        completion_range=(1500, 3500),
        prompt_range=(150, 600),
        templates=sim.templates("burst", 6),
        diurnal=False,
    )
    return [Actor(acct, [phase], "burst", "attack", "burst", at)]


def _low_slow(sim: Simulation, at: float) -> list[Actor]:
    acct = sim.account(11_000_000, "free", age_days=10.0, verified=True)
    phase = Phase(
        start=at,
        end=at + 36 * HOUR,
        rate=1.0,
        rate_end=30.0,
        ips=[sim.ip(RESIDENTIAL_PREFIXES) for _ in range(3)],
        keys=[sim.id("key-slow", 0)],
        agent="python-requests/2.32.3",
        model=MODELS[0],
        completion_range=(1200, 3000),
        prompt_range=(100, 400),
        templates=sim.templates("slow", 12),
        diurnal=False,
    )
    cruise = replace(phase, start=at + 36 * HOUR, end=max(sim.end, at + 36 * HOUR), rate=30.0)
    cruise.rate_end = None
    return [Actor(acct, [phase, cruise], "low_slow", "attack", "low_slow", at)]


def _hydra(sim: Simulation, at: float, members: int = 300) -> list[Actor]:
    rng = sim.rng
    pool = [sim.ip(HOSTING_PREFIXES) for _ in range(40)] + [
        sim.ip(RESIDENTIAL_PREFIXES)
        for _ in range(20)  # residential proxies
    ]
    templates = sim.templates("hydra", 40)
    cards = [sim.id("hydra-card", k) for k in range(5)]
    actors = []
    for m in range(members):
        verified = rng.random() < 0.3
        acct = sim.account(
            12_000_000 + m,
            rng.choice(("free", "free", "pro")),
            age_days=(sim.start - at) / DAY + rng.uniform(1, 3),
            verified=verified,
            payment_fingerprint=rng.choice(cards) if verified else None,
            country=rng.choice(("US", "SG", "NL", "BR")),
        )
        begin = at + rng.uniform(0, 1800)
        phase = _fleet_phase(
            sim,
            begin,
            pool,
            f"key-hydra{m}",
            lambda: rng.choice(("python-httpx/0.27.0", "aiohttp/3.9.5")),
            lambda: rng.sample(templates, 12),
        )
        actors.append(Actor(acct, [phase], "hydra", "attack", "hydra", begin))
    return actors


def _fleet_phase(
    sim: Simulation,
    begin: float,
    pool: list[str],
    key_kind: str,
    agent: Callable[[], str],
    templates: Callable[[], list[str]],
) -> Phase:
    """One fleet member from ``begin`` on: 2-5 requests/min around the clock from four
    addresses of the fleet's ``pool``, two or three keys of its own, long outputs.
    ``agent`` and ``templates`` are drawn last, in that order, so that every scenario's
    seeded draws keep their order."""
    rng = sim.rng
    return Phase(
        start=begin,
        end=sim.end,
        rate=rng.uniform(2.0, 5.0),
        ips=rng.sample(pool, 4),
        keys=[sim.id(key_kind, k) for k in range(rng.randint(2, 3))],
        agent=agent(),
        model=MODELS[0],
        completion_range=(800, 2500),
        prompt_range=(100, 500),
        templates=templates(),
        diurnal=False,
    )


def _hydra_paraphrased(sim: Simulation, at: float, members: int = 300) -> list[Actor]:
    """A hydra cluster without shared templates or cards: only its infrastructure (hosting
    and proxy addresses, one client) and its creation cohort tie the accounts together."""
    rng = sim.rng
    pool = [sim.ip(HOSTING_PREFIXES) for _ in range(30)] + [
        sim.ip(RESIDENTIAL_PREFIXES) for _ in range(30)
    ]
    actors = []
    for m in range(members):
        acct = sim.account(
            13_000_000 + m,
            "free",
            age_days=(sim.start - at) / DAY + rng.uniform(0.5, 1.0),
            verified=False,
            country=rng.choice(("US", "SG", "NL", "BR", "VN")),
        )
        begin = at + rng.uniform(0, 1800)
        own = sim.templates(f"para{m}", 12)  # this account's own paraphrases
        phase = _fleet_phase(
            sim, begin, pool, f"key-para{m}", lambda: "Go-http-client/2.0", lambda own=own: own
        )
        actors.append(
            Actor(acct, [phase], "hydra_paraphrased", "attack", "hydra_paraphrased", begin)
        )
    return actors


def _takeover(sim: Simulation, at: float) -> list[Actor]:
    (victim,) = sim.established(1)
    base = victim.phases[0]
    victim.phases = [
        replace(base, end=at),
        Phase(
            start=at,
            end=sim.end,
            rate=max(40.0, base.rate * 40),
            ips=[sim.ip(HOSTING_PREFIXES) for _ in range(3)],
            keys=base.keys,
            agent="python-httpx/0.27.0",
            model=MODELS[0],
            completion_range=(1500, 3500),
            prompt_range=(100, 500),
            templates=sim.templates("takeover", 8),
            diurnal=False,
        ),
    ]
    victim.scenario, victim.label, victim.campaign, victim.attack_start = (
        "takeover",
        "attack",
        "takeover",
        at,
    )
    return []


def _key_leak(sim: Simulation, at: float) -> list[Actor]:
    (owner,) = sim.established(2)[1:]
    leaked = owner.phases[0].keys[0]
    ips = [sim.ip(HOSTING_PREFIXES) for _ in range(15)] + [
        sim.ip(RESIDENTIAL_PREFIXES) for _ in range(15)
    ]
    phase = Phase(
        start=at,
        end=sim.end,
        rate=12.0,
        ips=ips,
        keys=[leaked],
        agent="python-requests/2.32.3",
        model=MODELS[0],
        completion_range=(800, 2000),
        diurnal=False,
    )
    return [Actor(owner.account, [phase], "key_leak", "attack", "key_leak", at, stream=1)]


# --- benign hard negatives ----------------------------------------------------------------


def _enterprise_batch(sim: Simulation, at: float) -> list[Actor]:
    rng = sim.rng
    actors = []
    for n in range(4):
        acct = sim.account(
            20_000_000 + n,
            "enterprise",
            age_days=rng.uniform(200, 800),
            verified=True,
            payment_fingerprint=sim.id("ent-card", n),
        )
        phase = sim.whole_run(
            rate=rng.uniform(80, 200),
            ips=[sim.ip(HOSTING_PREFIXES) for _ in range(2)],
            keys=[sim.id(f"key-ent{n}", 0)],
            agent="openai-python/1.54.3",
            model=MODELS[1],
            completion_range=(10, 80),
            prompt_range=(500, 2000),
            templates=sim.templates(f"ent{n}", 5),
            diurnal=False,
        )
        actors.append(Actor(acct, [phase], "enterprise_batch"))
    return actors


def _eval_harness(sim: Simulation, at: float) -> list[Actor]:
    actors = []
    for n in range(3):
        acct = sim.account(
            21_000_000 + n,
            "pro",
            age_days=300 + 50 * n,
            verified=True,
            payment_fingerprint=sim.id("eval-card", n),
        )
        common = dict(
            ips=[sim.ip(HOSTING_PREFIXES) for _ in range(2)],
            keys=[sim.id(f"key-eval{n}", 0)],
            agent="lm-eval-harness/0.4.5",
            model=MODELS[0],
        )
        phases, t = [], sim.start
        first = at + n * 2 * HOUR
        while t < sim.end:
            nxt = first if t < first else t + 8 * HOUR
            burst_end = min(nxt + 20 * 60, sim.end)
            if nxt >= sim.end:
                phases.append(Phase(start=t, end=sim.end, rate=0.5, **common))
                break
            phases.append(Phase(start=t, end=nxt, rate=0.5, **common))
            phases.append(
                Phase(
                    start=nxt,
                    end=burst_end,
                    rate=200.0,
                    completion_range=(100, 800),
                    templates=sim.templates("benchmark", 100),
                    diurnal=False,
                    **common,
                )
            )
            t = burst_end
        actors.append(Actor(acct, phases, "eval_harness"))
    return actors


def _model_launch(sim: Simulation, at: float) -> list[Actor]:
    """Every population account moves to the new model at 1.6x for six hours."""
    sim.launched_at = at
    for actor in sim.actors[: sim.population]:
        if actor.scenario != "population":
            continue
        base = actor.phases[-1]
        if base.start >= at or base.end <= at:
            continue
        end = min(at + 6 * HOUR, base.end)
        launch = replace(base, start=at, end=end, rate=base.rate * 1.6, model=LAUNCH_MODEL)
        actor.phases[-1:] = [
            replace(base, end=at),
            launch,
            *([replace(base, start=end)] if end < base.end else []),
        ]
    return []


def _university_lab(sim: Simulation, at: float) -> list[Actor]:
    rng = sim.rng
    nat = [sim.ip(RESIDENTIAL_PREFIXES[:1])]
    nat.append(nat[0].rsplit(".", 1)[0] + ".77")
    actors = []
    for n in range(40):
        acct = sim.account(
            22_000_000 + n,
            "free",
            age_days=rng.uniform(30, 400),
            verified=True,
            org_id=sim.id("uni-org", n),
        )
        phase = sim.whole_run(
            rate=rng.uniform(0.3, 3.0),
            ips=nat,
            keys=[sim.id(f"key-uni{n}", 0)],
            agent=rng.choice(BENIGN_AGENTS),
            model=rng.choice(MODELS),
            tz_hours=1.0,
        )
        actors.append(Actor(acct, [phase], "university_lab"))
    return actors


SCENARIOS: dict[str, Callable[[Simulation, float], list[Actor]]] = {
    "burst": _burst,
    "low_slow": _low_slow,
    "hydra": _hydra,
    "hydra_paraphrased": _hydra_paraphrased,
    "takeover": _takeover,
    "key_leak": _key_leak,
    "enterprise_batch": _enterprise_batch,
    "eval_harness": _eval_harness,
    "model_launch": _model_launch,
    "university_lab": _university_lab,
}
ATTACKS = ("burst", "low_slow", "hydra", "hydra_paraphrased", "takeover", "key_leak")
BENIGN = ("enterprise_batch", "eval_harness", "model_launch", "university_lab")
