"""Alert policy: flagged findings -> episodes -> alert records.

One episode per account, whichever view (5-minute or hourly) raised it. It *opens* on the
first flagged window (one alert, status ``open``), emits ``update`` only when its severity
rises, and *resolves* (status ``resolved``) after ``resolve_after`` quiet buckets, counted
from the end of the next hourly view when the last flag came from an hourly view (which
cannot flag again sooner). A flag within ``cooldown`` buckets of a resolve reopens the same
episode (same ``alert_id``, status ``update``) instead of paging again. ``alert_id`` is a
hash of the episode's identity (kind, account, the bucket that opened it), so any run over
the same events (live, replay, after a restart) gives the same id. Allow-listed accounts
are never alerted. Times are event times.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from pipeline.detect.account import Finding
from pipeline.records import Alert, Reason

SEVERITIES = ("low", "medium", "high", "critical")


def stable_id(*parts: str) -> str:
    """24 hex characters of SHA-256 over the parts: the same episode gives the same id."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def severity_of(score: float, threshold: float, context: dict) -> str:
    """Severity from how far the score is past the threshold, lowered for trusted accounts."""
    level = 1 + (score >= threshold + 2.0) + (score >= threshold + 4.0)
    trusted = (
        context.get("payment_verified") is True
        and float(context.get("account_age_days") or 0.0) >= 90.0
        and float(context.get("risky_network_share") or 0.0) < 0.2
    )
    return SEVERITIES[max(0, level - trusted)]


@dataclass(slots=True)
class Episode:
    alert_id: str
    account_id: str
    detector: str
    opened: int
    quiet_from: int  # bucket index from which the episode counts as quiet
    severity: str
    score: float
    reasons: list[Reason]
    context: dict
    window_start: float
    window_end: float
    first_event_ts: float
    last_event_ts: float
    evidence: dict[str, int] = field(default_factory=dict)
    resolved_at: int | None = None


class AlertPolicy:
    """Episode state of one partition. Pure: findings and bucket ticks in, alerts out."""

    def __init__(
        self,
        threshold: float,
        bucket_seconds: int,
        resolve_after: int,
        cooldown: int,
        allow: frozenset[str] = frozenset(),
    ) -> None:
        self.threshold = threshold
        self.bucket_seconds = bucket_seconds
        self.resolve_after = resolve_after
        self.cooldown = cooldown
        self.allow = allow
        self.episodes: dict[str, Episode] = {}

    def on_finding(self, finding: Finding, index: int) -> Alert | None:
        """A flagged finding at bucket ``index``: open, update or extend an episode."""
        view = finding.view
        if not finding.flagged or view.account_id in self.allow:
            return None
        key = view.account_id
        sev = severity_of(finding.score, self.threshold, finding.context)
        ep = self.episodes.get(key)
        if ep is None:
            ep = Episode(
                alert_id=stable_id("account", view.account_id, str(index)),
                account_id=view.account_id,
                detector=finding.detector,
                opened=index,
                quiet_from=self._quiet_from(finding, index),
                severity=sev,
                score=finding.score,
                reasons=finding.reasons,
                context=finding.context,
                window_start=view.start,
                window_end=view.end,
                first_event_ts=view.first_ts,
                last_event_ts=view.last_ts,
            )
            _add_evidence(ep, finding)
            self.episodes[key] = ep
            return self._alert(ep, "open", index)
        reopened = ep.resolved_at is not None
        rose = SEVERITIES.index(sev) > SEVERITIES.index(ep.severity)
        ep.resolved_at = None
        ep.quiet_from = max(ep.quiet_from, self._quiet_from(finding, index))
        ep.window_end = view.end
        ep.last_event_ts = view.last_ts
        _add_evidence(ep, finding)
        if finding.score > ep.score:
            ep.score, ep.reasons, ep.context = finding.score, finding.reasons, finding.context
            ep.detector = finding.detector
        if rose:
            ep.severity = sev
        return self._alert(ep, "update", index) if (rose or reopened) else None

    def _quiet_from(self, finding: Finding, index: int) -> int:
        span = finding.view.end - finding.view.start
        if span > 3600 / 2:  # an hourly view: the next one comes an hour later
            return index + self.resolve_after + int(span // self.bucket_seconds)
        return index + self.resolve_after

    def on_tick(self, index: int) -> list[Alert]:
        """Bucket ``index`` closed: resolve quiet episodes, forget long-resolved ones."""
        out: list[Alert] = []
        for key in sorted(self.episodes):
            ep = self.episodes[key]
            if ep.resolved_at is None and index >= ep.quiet_from:
                ep.resolved_at = index
                out.append(self._alert(ep, "resolved", index))
            elif ep.resolved_at is not None and index - ep.resolved_at >= self.cooldown:
                del self.episodes[key]
        return out

    def _alert(self, ep: Episode, status: str, index: int) -> Alert:
        return Alert(
            alert_id=ep.alert_id,
            kind="account",
            status=status,
            account_ids=[ep.account_id],
            severity=ep.severity,
            score=ep.score,
            detector=ep.detector,
            reasons=list(ep.reasons),
            window_start=ep.window_start,
            window_end=ep.window_end,
            first_event_ts=ep.first_event_ts,
            last_event_ts=ep.last_event_ts,
            evidence=dict(ep.evidence),
            emitted_at=float((index + 1) * self.bucket_seconds),
            context=dict(ep.context),
        )


def _add_evidence(ep: Episode, finding: Finding) -> None:
    """Count flagged windows, keep the largest distinct counts and the latest view's volume."""
    ev = ep.evidence
    counts = finding.view.counts
    ev["flagged_windows"] = ev.get("flagged_windows", 0) + 1
    for name in ("distinct_api_keys", "distinct_ips", "distinct_networks"):
        ev[name] = max(ev.get(name, 0), counts[name])
    for name in ("requests", "prompt_tokens", "completion_tokens"):
        ev[f"window_{name}"] = counts[name]
