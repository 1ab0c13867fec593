"""Shared fixtures. Unit tests need nothing; integration tests share one broker per session.

Set ``KAFKA_BOOTSTRAP`` to run the integration tests against an existing cluster instead
of the embedded broker; every test isolates its topics with a unique prefix.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.broker import free_port
from pipeline.enrich.network import NetworkEnricher
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"


@pytest.fixture(scope="session")
def network() -> NetworkEnricher:
    """The real IP data (built-in plus the installed ASN table), loaded once (about 1 s)."""
    return NetworkEnricher.from_settings(Settings.load().network)


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    existing = os.environ.get("KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    from pipeline.broker import LocalBroker

    with LocalBroker() as broker:
        yield broker.bootstrap


@pytest.fixture
def kafka_settings(bootstrap: str, tmp_path: Path) -> Settings:
    """Settings for one integration test: own topic prefix, group id and state dir."""
    tag = uuid.uuid4().hex[:8]
    return Settings.load(
        environ={},
        overrides={
            "kafka.bootstrap": bootstrap,
            "kafka.session_timeout_s": "6",
            "topics.prefix": f"t{tag}.",
            "app_id": f"xwatch-test-{tag}",
            "data_dir": str(tmp_path / "state"),
            "log_level": "info",
            "web_port": str(free_port()),
            "web_bind": "127.0.0.1",
        },
    )
