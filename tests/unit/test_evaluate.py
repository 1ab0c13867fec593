"""The evaluation harness on a small scale: figures are computed from ground truth."""

from __future__ import annotations

from pipeline import evaluate
from pipeline.settings import Settings


def test_small_evaluation_detects_attacks_and_reports_figures(network) -> None:
    settings = Settings.load(environ={})
    r = evaluate.run(
        settings,
        network,
        seed=3,
        scenarios=("burst", "takeover", "university_lab"),
        accounts=300,
        days=0.75,
        attack_at=4 * 3600,
    )
    result = evaluate.figures(r)
    s = result["scenarios"]
    for name in ("burst", "takeover"):
        assert s[name]["campaign_recall"] == 1.0, s[name]
        assert s[name]["ttd_median_s"] <= 600
        assert s[name]["tokens_before_alert_median"] > 0
    assert s["university_lab"]["falsely_alerted"] == 0
    o = result["overall"]
    assert o["benign_falsely_alerted"] == 0
    assert o["member_precision"] == 1.0
    assert o["events"] == r.events > 50_000
