"""The Faust app's wiring that needs no broker."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from aiokafka import AIOKafkaConsumer

from pipeline.app import create_app
from pipeline.settings import Settings


def test_the_workers_consumer_fetches_with_the_configured_wait() -> None:
    """Faust creates its aiokafka consumer with a fixed 1,500 ms fetch wait; the worker's
    takes ``kafka.fetch_max_wait_ms``, and aiokafka hands that attribute to its fetcher."""

    async def created() -> AIOKafkaConsumer:
        overrides = {"kafka.bootstrap": "127.0.0.1:9", "kafka.fetch_max_wait_ms": "77"}
        s = Settings.load(environ={}, overrides=overrides)
        app = create_app(s)
        return app.consumer._thread._create_worker_consumer(app.transport)

    consumer = asyncio.run(created())
    assert consumer._fetch_max_wait_ms == 77
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)
    assert Settings.load(environ={}).kafka.fetch_max_wait_ms == 100


@pytest.mark.parametrize("name", ["kafka.take_max", "kafka.take_within_ms"])
def test_the_worker_refuses_an_empty_batch_setting(name: str) -> None:
    """The detect agent takes batches of at most ``kafka.take_max`` messages, waiting at
    most ``kafka.take_within_ms``: zero of either would hold no message or never wait, so
    the worker refuses it at start, naming the setting."""
    s = Settings.load(environ={}, overrides={"kafka.bootstrap": "127.0.0.1:9", name: "0"})
    with pytest.raises(ValueError, match=rf"^{name} must be 1 or more, not 0$"):
        create_app(s)
    assert Settings.load(environ={}).kafka.take_max == 256
