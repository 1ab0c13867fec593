"""Campaign detection: fleets that share templates are grouped; NATs and orgs are not."""

from __future__ import annotations

import random

from pipeline.codec import decode_digest, encode_alert, encode_digest, encode_request
from pipeline.detect.campaigns import CampaignDetector, CampaignStage, campaign_input
from pipeline.features.windows import SHORT, View
from pipeline.flow import Flow, campaign_detector, partition_for
from pipeline.records import Account, Source
from pipeline.settings import Settings
from pipeline.sim.scenarios import Simulation

T0 = 1_793_606_400.0


def _view(
    acct: str,
    index: int,
    fps: set[str],
    reuse: float = 0.9,
    risky: float = 1.0,
    ips: tuple[int, ...] = (),
    agent: int = 7,
) -> View:
    """A closed 5-minute view; ``ips`` and ``agent`` are ``seen`` keys (an address of its
    own per account unless a test shares them)."""
    end = (index + 1) * 60.0
    return View(
        SHORT,
        acct,
        end - 300,
        end,
        end - 290,
        end - 5,
        {"template_reuse": reuse, "risky_network_share": risky},
        {"requests": 20, "completion_tokens": 40_000, "fingerprinted": 20},
        [1],
        [agent],
        list(ips) or [sum(acct.encode()) + 1000],
        fps,
    )


def _acct(name: str, org: str | None = None, age_days: float = 2, verified=False) -> Account:
    return Account(name, org or f"org-{name}", T0 - age_days * 86400, "free", "US", verified)


def _run(det: CampaignDetector, accounts: dict[str, Account], views: list[View]) -> list:
    alerts = []
    start = int(T0 // 60)
    for i in range(30):
        for v in views:
            v = _view(
                v.account_id,
                start + i,
                v.fingerprints,
                v.values["template_reuse"],
                v.values["risky_network_share"],
                tuple(v.ips),
                v.agents[0],
            )
            inp = campaign_input(v, accounts[v.account_id])
            if inp is not None:
                det.observe(inp, start + i)
        alerts += det.tick(start + i)
    return alerts


def test_fleet_sharing_templates_is_one_campaign_updated_as_it_grows() -> None:
    det = CampaignDetector()
    accounts = {f"h{i}": _acct(f"h{i}") for i in range(12)}
    templates = [f"t{i}" for i in range(6)]
    views = [
        _view(a, 0, {templates[i % 6], templates[(i + 1) % 6]}) for i, a in enumerate(accounts)
    ]
    alerts = _run(det, accounts, views[:6])
    opened = [a for a in alerts if a.status == "open"]
    assert len(opened) == 1 and opened[0].kind == "campaign"
    assert opened[0].account_ids == sorted(list(accounts)[:6])
    more = _run(det, accounts, views)
    updates = [a for a in more if a.status == "update"]
    assert updates and updates[-1].alert_id == opened[0].alert_id
    assert updates[-1].account_ids == sorted(accounts)


def test_nat_and_one_org_and_trusted_accounts_are_not_campaigns() -> None:
    det = CampaignDetector()
    # a lab behind one NAT: same network, unique prompts -> no links at all
    lab = {f"u{i}": _acct(f"u{i}", age_days=200, verified=True) for i in range(20)}
    lab_views = [
        _view(a, 0, {f"unique-{a}-{k}" for k in range(5)}, reuse=0.0, risky=0.0) for a in lab
    ]
    # one organisation's accounts share templates: counts as one org
    org = {f"o{i}": _acct(f"o{i}", org="acme") for i in range(10)}
    org_views = [_view(a, 0, {"acme-template"}) for a in org]
    # established, verified accounts on residential networks sharing a template: not a fleet
    good = {f"g{i}": _acct(f"g{i}", age_days=400, verified=True) for i in range(10)}
    good_views = [_view(a, 0, {"popular-template"}, risky=0.0) for a in good]
    alerts = _run(det, {**lab, **org, **good}, lab_views + org_views + good_views)
    assert alerts == []


def _shared_infra_fleet(ages: list[float]) -> list:
    """Accounts that share only addresses and a client (own prompts, no payment)."""
    det = CampaignDetector()
    accounts = {f"p{i}": _acct(f"p{i}", age_days=age) for i, age in enumerate(ages)}
    views = [
        _view(a, 0, {f"own-{a}"}, ips=(100 + i % 3, 200 + i % 2), agent=9)
        for i, a in enumerate(accounts)
    ]
    return _run(det, accounts, views)


def test_fleet_sharing_only_infrastructure_is_a_campaign_when_created_together() -> None:
    alerts = _shared_infra_fleet([2.0 + i / 100 for i in range(12)])
    opened = [a for a in alerts if a.status == "open"]
    assert len(opened) == 1 and len(opened[0].account_ids) == 12
    reasons = {r.feature: r.observed for r in opened[0].reasons}
    assert reasons["shared_templates"] == 0 and reasons["shared_infrastructure"] >= 2
    assert reasons["creation_cohort_share"] == 1.0
    assert opened[0].evidence["shared_infrastructure"] == reasons["shared_infrastructure"]


def test_shared_infrastructure_without_a_creation_cohort_is_not_a_campaign() -> None:
    # the same sharing by young, unverified accounts created days apart: neighbours on a
    # proxy or a cloud, not a fleet registered together
    assert _shared_infra_fleet([1.0 + 2.5 * i for i in range(12)]) == []


def test_trusted_accounts_never_link_by_infrastructure() -> None:
    # established, verified accounts: their view is not suspicious, so no infra link
    view = _view("t0", int(T0 // 60), {"own"}, reuse=0.0, risky=1.0, ips=(100,))
    assert campaign_input(view, _acct("t0", age_days=400, verified=True)) is None
    assert campaign_input(view, None) is None  # unknown: no creation time, no cohort
    young = campaign_input(view, _acct("t0", age_days=2, verified=False))
    assert young is not None and [k for k, _ in young.keys] == ["infra"]


def _hydra_digests(network) -> tuple[list, list, list]:
    """Hydra traffic through an inline flow (its campaign alerts) and through a flow whose
    shards emit digests instead (each partition's digests, in order)."""

    cfg = Settings.load(environ={}).detector
    sim = Simulation(seed=3, accounts=200, duration=2400, rate=10.0, scenarios=("hydra",))
    inline = Flow(cfg, network, partitions={0, 1, 2})
    shards = Flow(cfg, network, external_campaigns=True)
    for acct in sim.accounts():
        inline.accounts.put(acct)
        shards.accounts.put(acct)
    alerts, digests, offsets = [], [], [0, 0, 0]
    for ev in sim.events():
        key = ev.account_id.encode()
        p = partition_for(key, 3)
        raw = encode_request(ev)
        alerts += inline.process_message(key, raw, Source("t", p, offsets[p])).alerts
        out = shards.process_message(key, raw, Source("t", p, offsets[p]))
        assert not [a for a in out.alerts if a.kind == "campaign"]
        digests += out.digests
        offsets[p] += 1
    campaign = [a for a in alerts if a.kind == "campaign"]
    return campaign, digests, [a for a in alerts if a.kind == "account"]


def test_campaign_stage_fed_digests_in_any_order_equals_the_inline_flow(network) -> None:
    """The live worker's campaign agent gets digests from every shard, interleaved however
    the workers ran, encoded on a topic, and replayed after restarts: the alerts must be
    the inline flow's all the same."""

    expected, digests, _ = _hydra_digests(network)
    assert expected and expected[0].status == "open"
    cfg = Settings.load(environ={}).detector
    by_partition = {p: [d for d in digests if d.partition == p] for p in range(3)}
    rng = random.Random(5)
    for trial in range(3):
        # each partition in its own order; partitions interleaved at random; a prefix of
        # each partition offered twice (a shard replaying after a restart); via JSON
        stage = CampaignStage(campaign_detector(cfg), {0, 1, 2})
        cursors = dict.fromkeys(by_partition, 0)
        got = []
        while cursors:
            p = rng.choice(sorted(cursors))
            i = cursors[p]
            raw = encode_digest(by_partition[p][i])
            got += stage.offer(decode_digest(raw))
            if trial and i and rng.random() < 0.2:  # replayed digest: ignored
                got += stage.offer(decode_digest(encode_digest(by_partition[p][i - 1])))
            cursors[p] += 1
            if cursors[p] == len(by_partition[p]):
                del cursors[p]
        assert [encode_alert(a) for a in got] == [encode_alert(a) for a in expected]
