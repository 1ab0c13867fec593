"""The replay report: one self-contained HTML file (inline SVG, no script, no network).

Sections: the alert timeline; the distribution of every scored window's risk score with the
alert threshold; with labels, recall and precision of "an account's highest window score
reaches t" for thresholds t (a view of the score alone: the volume gate and trust rules
that also decide a flag are left out, so the real operating point sits at or below these
curves), time to detect per campaign; the top alert reasons; and a sweep's table.

:class:`ScoreLog` is the observer replay attaches to the core (``Flow.score_observer``): a
histogram per view kind and the highest score per account, nothing per window.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline.records import Alert

_BIN = 0.5
_W, _H, _PAD = 760, 220, 40
_COLORS = {"low": "#8aa", "medium": "#e6a23c", "high": "#e4572e", "critical": "#8b0000"}


@dataclass(slots=True)
class ScoreLog:
    """Scores of every window the detector scored (a histogram, and a max per account)."""

    bins: dict[str, Counter] = field(default_factory=dict)
    max_score: dict[str, float] = field(default_factory=dict)
    windows: int = 0

    def __call__(self, view, score: float, flagged: bool) -> None:
        self.windows += 1
        b = self.bins.get(view.kind)
        if b is None:
            b = self.bins[view.kind] = Counter()
        b[int(score // _BIN)] += 1
        acct = view.account_id
        if score > self.max_score.get(acct, float("-inf")):
            self.max_score[acct] = score


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%m-%d %H:%M")


def _svg(body: str, title: str) -> str:
    return (
        f'<figure><figcaption>{_esc(title)}</figcaption><svg role="img" '
        f'aria-label="{_esc(title)}" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}">'
        f'<rect width="{_W}" height="{_H}" fill="#fbfbfb"/>{body}</svg></figure>'
    )


def _axis(x0: str, x1: str, y_label: str) -> str:
    return (
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - 10}" y2="{_H - _PAD}" stroke="#444"/>'
        f'<line x1="{_PAD}" y1="10" x2="{_PAD}" y2="{_H - _PAD}" stroke="#444"/>'
        f'<text x="{_PAD}" y="{_H - 12}" font-size="11">{_esc(x0)}</text>'
        f'<text x="{_W - 10}" y="{_H - 12}" font-size="11" text-anchor="end">{_esc(x1)}</text>'
        f'<text x="4" y="20" font-size="11">{_esc(y_label)}</text>'
    )


def timeline(alerts: list[Alert]) -> str:
    if not alerts:
        return "<p>No alerts.</p>"
    t0 = min(a.emitted_at for a in alerts)
    t1 = max(a.emitted_at for a in alerts)
    span = max(60.0, t1 - t0)
    lanes = {"account": _H * 0.35, "campaign": _H * 0.65}
    marks = []
    for a in alerts:
        x = _PAD + (a.emitted_at - t0) / span * (_W - _PAD - 20)
        y = lanes.get(a.kind, _H / 2)
        color = _COLORS.get(a.severity, "#555")
        shape = (
            f'<circle class="alert" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}">'
            if a.status != "resolved"
            else f'<circle class="alert" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="none" '
            f'stroke="{color}">'
        )
        label = f"{a.status} {a.kind} {a.severity} {','.join(a.account_ids[:3])}"
        marks.append(f"{shape}<title>{_esc(_time(a.emitted_at))} {_esc(label)}</title></circle>")
    lane_labels = "".join(
        f'<text x="{_PAD + 4}" y="{y - 8:.0f}" font-size="11">{k}</text>' for k, y in lanes.items()
    )
    body = _axis(_time(t0), _time(t1), "alerts") + lane_labels + "".join(marks)
    return _svg(body, "Alert timeline (filled: open/update, ring: resolved; colour: severity)")


def score_histogram(log: ScoreLog, threshold: float) -> str:
    if not log.windows:
        return "<p>No windows were scored.</p>"
    lo = min(min(b) for b in log.bins.values())
    hi = max(max(b) for b in log.bins.values())
    n_bins = max(1, hi - lo + 1)
    top = max(max(b.values()) for b in log.bins.values())
    bw = (_W - _PAD - 20) / n_bins
    bars = []
    for k, (kind, bins) in enumerate(sorted(log.bins.items())):
        color = ("#4c78a8", "#f58518")[k % 2]
        for i, count in bins.items():
            h = (_H - _PAD - 20) * (count**0.5) / (top**0.5)  # sqrt scale: tails stay visible
            x = _PAD + (i - lo) * bw + (bw / 2 if k else 0)
            bars.append(
                f'<rect class="bin" x="{x:.1f}" y="{_H - _PAD - h:.1f}" width="{bw / 2:.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{kind} score {i * _BIN:.1f}: '
                f"{count}</title></rect>"
            )
    tx = _PAD + (threshold / _BIN - lo) * bw
    line = (
        f'<line class="threshold" x1="{tx:.1f}" y1="10" x2="{tx:.1f}" y2="{_H - _PAD}" '
        f'stroke="#c00" stroke-dasharray="4 3"/><text x="{tx + 4:.1f}" y="22" font-size="11" '
        f'fill="#c00">alert threshold {threshold:g}</text>'
    )
    palette = ("#4c78a8", "#f58518")
    legend = "".join(
        f'<text x="{_W - 160}" y="{20 + 14 * k}" font-size="11" fill="{palette[k % 2]}">'
        f"{_esc(kind)} windows: {sum(b.values()):,}</text>"
        for k, (kind, b) in enumerate(sorted(log.bins.items()))
    )
    body = _axis(f"{lo * _BIN:g}", f"{(hi + 1) * _BIN:g}", "windows (sqrt)") + "".join(bars)
    return _svg(body + line + legend, "Risk score of every scored window, per view kind")


def pr_curve(log: ScoreLog, labels: list[dict]) -> tuple[str, list[dict]]:
    attackers = {r["account_id"] for r in labels if r["label"] == "attack"}
    scores = log.max_score
    benign = [a for a in scores if a not in attackers]
    rows = []
    t = 2.0
    while t <= 14.0:
        tp = sum(1 for a in attackers if scores.get(a, float("-inf")) >= t)
        fp = sum(1 for a in benign if scores[a] >= t)
        rows.append({"threshold": t, "recall": tp / len(attackers) if attackers else 0.0,
                     "precision": tp / (tp + fp) if tp + fp else 1.0, "false": fp})  # fmt: skip
        t += 0.5

    def path(key: str) -> str:
        pts = [
            f"{_PAD + (r['threshold'] - 2) / 12 * (_W - _PAD - 20):.1f},"
            f"{_H - _PAD - r[key] * (_H - _PAD - 20):.1f}"
            for r in rows
        ]
        return " ".join(pts)

    body = (
        _axis("threshold 2", "14", "share")
        + f'<polyline class="recall" points="{path("recall")}" fill="none" stroke="#4c78a8" '
        f'stroke-width="2"/><polyline class="precision" points="{path("precision")}" '
        f'fill="none" stroke="#e4572e" stroke-width="2"/>'
        f'<text x="{_W - 200}" y="20" font-size="11" fill="#4c78a8">recall (attack accounts)'
        f'</text><text x="{_W - 200}" y="34" font-size="11" fill="#e4572e">precision</text>'
    )
    title = "Recall and precision if an account's highest window score had to reach t"
    return _svg(body, title), rows


def ttd_bars(alerts: list[Alert], labels: list[dict]) -> str:
    first: dict[str, float] = {}
    for a in alerts:
        if a.status != "resolved":
            for acct in a.account_ids:
                first.setdefault(acct, a.emitted_at)
    camps: dict[str, list[dict]] = {}
    for r in labels:
        if r["label"] == "attack":
            camps.setdefault(r["campaign"], []).append(r)
    rows = []
    for camp, members in sorted(camps.items()):
        start = min(m["start"] for m in members)
        hits = [first[m["account_id"]] for m in members if m["account_id"] in first]
        rows.append((camp, (min(hits) - start) / 60 if hits else None, len(members)))
    top = max((r[1] for r in rows if r[1] is not None), default=1.0) or 1.0
    out = ['<table class="ttd"><tr><th>campaign</th><th>members</th><th>time to detect</th>'
           "<th></th></tr>"]  # fmt: skip
    for camp, minutes, n in rows:
        bar = (
            f'<div class="bar" style="width:{max(2, 300 * minutes / top):.0f}px"></div>'
            if minutes is not None
            else "not detected"
        )
        shown = f"{minutes:.0f} min" if minutes is not None else "-"
        out.append(f"<tr><td>{_esc(camp)}</td><td>{n}</td><td>{shown}</td><td>{bar}</td></tr>")
    return "".join(out) + "</table>"


def top_reasons(alerts: list[Alert], n: int = 10) -> str:
    counts = Counter(r.feature for a in alerts if a.status != "resolved" for r in a.reasons)
    if not counts:
        return "<p>No reasons (no alerts).</p>"
    top = counts.most_common(n)
    peak = top[0][1]
    rows = "".join(
        f'<tr><td>{_esc(f)}</td><td>{c}</td><td><div class="bar" '
        f'style="width:{300 * c / peak:.0f}px"></div></td></tr>'
        for f, c in top
    )
    return f'<table class="reasons"><tr><th>reason</th><th>alerts</th><th></th></tr>{rows}</table>'


def sweep_table(rows: list[dict]) -> str:
    head = ("variant", "alerts", "recall", "precision", "false/10k/day", "TTD median")
    out = ['<table class="sweep"><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in rows:
        name = " ".join(f"{k}={v}" for k, v in r["variant"].items()) or "(defaults)"
        ttd = r.get("ttd_median_s")
        cells = (
            name,
            r["alerts"],
            _num(r.get("member_recall")),
            _num(r.get("member_precision")),
            _num(r.get("false_alerts_per_10k_per_day")),
            f"{ttd / 60:.0f} min" if ttd is not None else "-",
        )
        out.append("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in cells) + "</tr>")
    return "".join(out) + "</table>"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def render(
    title: str,
    alerts: list[Alert],
    log: ScoreLog,
    threshold: float,
    summary: dict,
    labels: list[dict] | None = None,
    figures: dict | None = None,
    sweep: list[dict] | None = None,
) -> str:
    """The whole report as one HTML string."""
    parts = [
        f"<h1>{_esc(title)}</h1>",
        "<dl>" + "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in summary.items())
        + "</dl>",
        "<h2>Alert timeline</h2>",
        timeline(alerts),
        "<h2>Score distribution</h2>",
        score_histogram(log, threshold),
    ]  # fmt: skip
    if labels is not None:
        curve, _ = pr_curve(log, labels)
        parts += ["<h2>Precision and recall against threshold</h2>", curve]
        parts += ["<h2>Time to detect per campaign</h2>", ttd_bars(alerts, labels)]
    if figures is not None:
        parts += ["<h2>Evaluation</h2>", "<pre>" + _esc(_pretty(figures)) + "</pre>"]
    parts += ["<h2>Top reasons</h2>", top_reasons(alerts)]
    if sweep:
        parts += ["<h2>Sweep</h2>", sweep_table(sweep)]
    style = (
        "body{font:14px system-ui,sans-serif;margin:24px;max-width:900px;color:#222}"
        "h1{font-size:20px}h2{font-size:16px;margin-top:28px}"
        "table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #ddd;"
        "text-align:left}.bar{background:#4c78a8;height:10px}figure{margin:0}"
        "figcaption{color:#555;font-size:12px}dt{float:left;width:180px;color:#555}"
        "dd{margin-left:190px}"
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}'
        f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )


def _pretty(doc: dict) -> str:
    import orjson

    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
