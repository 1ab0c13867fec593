"""Settings: one reader of the environment, overrides, secrets never shown, docs in sync."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.settings import Settings, SettingsError
from tests.conftest import ROOT


def test_defaults_env_and_overrides() -> None:
    s = Settings.load(
        environ={
            "KAFKA_BOOTSTRAP": "k:9092",
            "XWATCH_Z_ALERT": "7.5",
            "XWATCH_ALLOW_ACCOUNTS": "a, b",
        },
        overrides={"detector.z_alert": "8", "topics.prefix": "x."},
    )
    assert s.kafka.bootstrap == "k:9092"
    assert s.detector.z_alert == 8.0
    assert s.detector.allow_accounts == frozenset({"a", "b"})
    assert s.topics.name("alerts") == "x.alerts"
    assert Settings.load(environ={}).detector.z_alert == 6.0


def test_bad_values_and_names_are_named_errors() -> None:
    with pytest.raises(SettingsError, match="XWATCH_Z_ALERT"):
        Settings.load(environ={"XWATCH_Z_ALERT": "high"})
    with pytest.raises(SettingsError, match=r"detector\.nope"):
        Settings.load(environ={}, overrides={"detector.nope": "1"})


def test_secrets_are_not_shown() -> None:
    s = Settings.load(environ={"XWATCH_KAFKA_SASL_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in repr(s)
    assert "hunter2-secret" not in str(s.describe())
    assert s.kafka.client_kwargs()["security_protocol"] == "PLAINTEXT"


def test_to_env_round_trips() -> None:
    s = Settings.load(environ={}, overrides={"detector.grace_seconds": "3", "topics.prefix": "p."})
    assert Settings.load(environ=s.to_env()) == s


def test_readme_configuration_table_is_current() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "config", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout
    assert out.strip() in (ROOT / "README.md").read_text(), "regenerate: xwatch config --markdown"
