"""Replay from a file: deterministic, scored against labels, swept over settings."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.codec import account_to_dict, encode_request
from pipeline.replay import ReplayError, file_records, read_labels, sweep_grid
from pipeline.sim.scenarios import Simulation


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("export")
    sim = Simulation(seed=7, accounts=150, duration=1800, rate=10.0, scenarios=("burst",))
    paths = {"events": d / "events.jsonl", "accounts": d / "accounts.jsonl",
             "labels": d / "labels.jsonl"}  # fmt: skip
    paths["events"].write_bytes(b"".join(encode_request(ev) + b"\n" for ev in sim.events()))
    paths["accounts"].write_bytes(
        b"".join(orjson.dumps(account_to_dict(a)) + b"\n" for a in sim.accounts())
    )
    paths["labels"].write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in sim.labels()))
    return paths


def _replay(paths: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["replay", "--input", str(paths["events"]), "--accounts",
                 str(paths["accounts"]), "--output", str(out), "--quiet", *extra])  # fmt: skip


def test_same_file_same_alert_bytes_and_labels_scored(exported, tmp_path, capsys) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert _replay(exported, a) == 0
    assert _replay(exported, b, "--labels", str(exported["labels"])) == 0
    assert a.read_bytes() == b.read_bytes() and a.read_bytes()
    figures = orjson.loads(capsys.readouterr().out)
    assert figures["attack"]["member_recall"] == 1.0
    assert figures["attack"]["tokens_before_alert_median"] > 0
    assert figures["benign"]["falsely_alerted"] == 0


def test_sweep_ranks_variants_by_objective(exported, capsys) -> None:
    code = main(["replay", "--input", str(exported["events"]), "--accounts",
                 str(exported["accounts"]), "--labels", str(exported["labels"]), "--quiet",
                 "--sweep", "detector.z_alert=2,6", "--objective", "false", "--json"])  # fmt: skip
    assert code == 0
    rows = orjson.loads(capsys.readouterr().out)
    assert [r["variant"]["detector.z_alert"] for r in rows] == ["6", "2"]
    assert rows[0]["false_alerts_per_10k_per_day"] <= rows[1]["false_alerts_per_10k_per_day"]


def test_bad_inputs_are_named(tmp_path) -> None:
    with pytest.raises(ReplayError, match="key=v1"):
        sweep_grid(["detector.z_alert"])
    assert sweep_grid(["a=1,2", "b=x"]) == [{"a": "1", "b": "x"}, {"a": "2", "b": "x"}]
    bad = tmp_path / "labels.jsonl"
    bad.write_text('{"account_id": "x", "label": "maybe"}\n')
    with pytest.raises(ReplayError, match=r"labels\.jsonl:1"):
        read_labels(bad)
    assert main(["replay", "--input", str(tmp_path / "missing.jsonl"), "--output",
                 str(tmp_path / "o.jsonl"), "--quiet"]) == 2  # fmt: skip


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is required (python3 dev.py test installs Debian's package)"
    return found


def test_report_renders_in_headless_chromium(exported, tmp_path) -> None:
    report = tmp_path / "report.html"
    assert _replay(exported, tmp_path / "a.jsonl", "--labels", str(exported["labels"]),
                   "--report", str(report)) == 0  # fmt: skip
    page = report.read_text()
    assert "<script" not in page and "http" not in page, "self-contained: no script, no fetch"
    browser = [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
               f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    dom = subprocess.run(
        [*browser, "--dump-dom", report.as_uri()], capture_output=True, timeout=120, text=True
    ).stdout
    for heading in ("Alert timeline", "Score distribution", "Precision and recall against "
                    "threshold", "Time to detect per campaign", "Top reasons"):  # fmt: skip
        assert f"<h2>{heading}</h2>" in dom
    assert 'class="alert"' in dom  # the burst account's alert on the timeline
    assert dom.count('class="bin"') >= 5 and 'class="threshold"' in dom
    assert 'class="recall"' in dom and 'class="precision"' in dom
    assert re.search(r"<td>burst</td><td>1</td><td>\d+ min</td>", dom)  # detected, timed
    shot = tmp_path / "report.png"
    subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1000,2000",
                    report.as_uri()], capture_output=True, timeout=120)  # fmt: skip
    assert shot.exists() and shot.stat().st_size > 20_000  # drawn, not a blank page


def test_a_reader_process_that_fails_is_a_replay_error() -> None:
    """The reader process reports its failure (here: no broker at all, which kafka-python
    gives up on after 30 s) and the replay stops with it, instead of waiting for batches
    that never come."""
    from pipeline.broker import free_port
    from pipeline.replay import _from_reader_process
    from pipeline.settings import Settings

    s = Settings.load(environ={}, overrides={"kafka.bootstrap": f"127.0.0.1:{free_port()}"})
    with pytest.raises(ReplayError, match=r"reading api\.requests: KafkaTimeoutError"):
        list(_from_reader_process(s, "api.requests", {0: (0, 10)}))


_LINE_PARTS = st.sampled_from(
    [b'{"account_id":"a1","x":1}', b'{"account_id": "a2"}', b'"account_id":"', b"x",
     b'{"account_id":""}', b'{"account_id":"\xc3\xa9"}', b"\r", b"\n", b"\r\n", b"", b'"',
     b' "account_id":"b"', b'"account_id":"c" "account_id":"d"', b"\xff"]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(_LINE_PARTS, max_size=4).map(b"".join), max_size=30),
    st.booleans(),
    st.sampled_from([1, 2, 7, 64, 1 << 20]),
    st.integers(1, 12),
)
def test_files_are_split_in_c_as_in_python(tmp_path_factory, lines, last_newline, chunk, parts):
    """_hot.records gives the Python loop's records (line numbers, keys, partitions, CR/LF
    stripping, empty lines skipped), whatever the chunk boundaries."""
    path = tmp_path_factory.mktemp("split") / "events.ndjson"
    data = b"\n".join(lines) + (b"\n" if last_newline and lines else b"")
    path.write_bytes(data)
    python, _ = file_records(path, parts, native=False)
    native, _ = file_records(path, parts, native=True, chunk_bytes=chunk)
    assert [r for b in native for r in b] == [r for b in python for r in b]
