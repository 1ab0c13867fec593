"""Secrets never reach output: a worker that cannot connect names the address, not the
password, and retries before giving up."""

from __future__ import annotations

import os
import subprocess
import sys
import time

SECRET = "hunter2-do-not-print"


def test_unreachable_broker_is_named_and_the_password_is_not() -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("XWATCH_", "KAFKA_"))},
        "KAFKA_BOOTSTRAP": "127.0.0.1:9",  # discard port: nothing answers
        "XWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "XWATCH_KAFKA_SASL_MECHANISM": "PLAIN",
        "XWATCH_KAFKA_SASL_USERNAME": "svc-xwatch",
        "XWATCH_KAFKA_SASL_PASSWORD": SECRET,
        "XWATCH_LOG_LEVEL": "debug",
    }
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "worker", "--connect-timeout", "3"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    took = time.monotonic() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert b"127.0.0.1:9" in out and b"did not answer" in out
    assert took >= 2.5, "gave up before retrying for the whole connect timeout"
    assert SECRET.encode() not in out
    shown = subprocess.run(
        [sys.executable, "-m", "pipeline", "config"], env=env, capture_output=True, timeout=60
    )
    assert shown.returncode == 0 and SECRET.encode() not in shown.stdout + shown.stderr
