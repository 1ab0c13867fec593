"""Campaign detection: fleets that share templates are grouped; NATs and orgs are not."""

from __future__ import annotations

from pipeline.detect.campaigns import CampaignDetector
from pipeline.features.windows import SHORT, View
from pipeline.records import Account

T0 = 1_793_606_400.0


def _view(acct: str, index: int, fps: set[str], reuse: float = 0.9, risky: float = 1.0) -> View:
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
        ["52.95.110.0/24"],
        ["python-httpx/0.27.0"],
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
            )
            det.observe(v, accounts[v.account_id], start + i)
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
