"""Offline validation of the deployment files: the compose stack and the Kubernetes and
Strimzi manifests, checked against their schemas and against what the code actually reads.
Every check is also run on a deliberately broken copy, which must be rejected."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from pipeline.cli import build_parser
from pipeline.settings import Settings
from pipeline.topics import topic_specs
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.30.0"
SETTINGS_ENV = {env for _, env, _, _ in Settings.load(environ={}).describe()}
XWATCH_SERVICES = {"topics", "worker-1", "worker-2", "simulator", "alerts"}


# --- validators ------------------------------------------------------------------------


def compose_problems(doc: dict) -> list[str]:
    """Structure of the compose stack, and its environment against the settings."""
    problems: list[str] = []
    services = doc.get("services") or {}
    missing = ({"kafka"} | XWATCH_SERVICES) - set(services)
    if missing:
        problems.append(f"missing services: {sorted(missing)}")
    kafka = services.get("kafka", {})
    if not str(kafka.get("image", "")).startswith("apache/kafka:"):
        problems.append("kafka must use the official apache/kafka image")
    if "broker,controller" not in str(kafka.get("environment", {}).get("KAFKA_PROCESS_ROLES")):
        problems.append("kafka must run in KRaft mode (broker,controller)")
    if "healthcheck" not in kafka:
        problems.append("kafka needs a healthcheck for depends_on")
    parser = build_parser()
    for name in XWATCH_SERVICES & set(services):
        svc = services[name]
        if not str(svc.get("image", "")).startswith("extraction-watch:"):
            problems.append(f"{name}: must run the extraction-watch image")
        env = svc.get("environment") or {}
        unknown = set(env) - SETTINGS_ENV
        if unknown:
            problems.append(f"{name}: variables no setting reads: {sorted(unknown)}")
        if "KAFKA_BOOTSTRAP" not in env:
            problems.append(f"{name}: no KAFKA_BOOTSTRAP")
        try:
            parser.parse_args(svc.get("command") or [])
        except SystemExit:
            problems.append(f"{name}: command is not a valid xwatch command: {svc.get('command')}")
        deps = svc.get("depends_on") or {}
        wanted = "kafka" if name == "topics" else "topics"
        if wanted not in deps:
            problems.append(f"{name}: must depend on {wanted}")
    return problems


def kubernetes_problems(docs: list[dict]) -> list[str]:
    """Core kinds against the Kubernetes schemas (strict), Strimzi kinds against Strimzi's."""
    problems: list[str] = []
    strimzi = [d for d in docs if str(d.get("apiVersion", "")).startswith("kafka.strimzi.io/")]
    for doc in docs:
        if doc in strimzi:
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except (
            kubernetes_validate.ValidationError,
            kubernetes_validate.SchemaNotFoundError,
        ) as exc:
            problems.append(f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}: {exc}")
    if strimzi:
        problems += strimzi_problems(strimzi)
    problems += consistency_problems(docs)
    return problems


def strimzi_problems(docs: list[dict]) -> list[str]:
    validator = DEPLOY / "validate"
    if not (validator / "node_modules").is_dir():
        pytest.fail(
            "Strimzi schemas missing: run `python3 dev.py test` (npm install in deploy/validate)"
        )
    proc = subprocess.run(
        [shutil.which("node") or "node", "strimzi.mjs"],
        input=json.dumps(docs),
        capture_output=True,
        text=True,
        cwd=validator,
        check=False,
    )
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(out) == len(docs), proc.stderr
    return [f"{r['kind']} {r['name']}: {r['errors']}" for r in out if not r["valid"]]


def consistency_problems(docs: list[dict]) -> list[str]:
    """What the manifests say against what the code reads and creates."""
    problems: list[str] = []
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d.get("kind", ""), []).append(d)
    for cm in by_kind.get("ConfigMap", []):
        unknown = set(cm.get("data", {})) - SETTINGS_ENV
        if unknown:
            problems.append(f"ConfigMap: variables no setting reads: {sorted(unknown)}")
    for secret in by_kind.get("Secret", []):
        unknown = set(secret.get("stringData", {})) - SETTINGS_ENV
        if unknown:
            problems.append(f"Secret: variables no setting reads: {sorted(unknown)}")
    default_port = Settings.load(environ={}).web_port
    for dep in by_kind.get("Deployment", []):
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            problems.append("Deployment: readiness probe must use /readyz")
        if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            problems.append("Deployment: liveness probe must use /healthz")
        ports = {p["containerPort"] for p in container.get("ports", [])}
        if default_port not in ports:
            problems.append(f"Deployment: container must expose {default_port}")
    topics = {d["metadata"]["name"]: d["spec"] for d in by_kind.get("KafkaTopic", [])}
    for spec in topic_specs(Settings.load(environ={})):
        t = topics.get(spec.name)
        if t is None:
            problems.append(f"KafkaTopic {spec.name} missing")
            continue
        if spec.config.get("cleanup.policy") != t.get("config", {}).get("cleanup.policy"):
            problems.append(f"KafkaTopic {spec.name}: cleanup.policy differs from the code")
    if topics and topics.get("api.requests", {}).get("partitions") != topics.get(
        "accounts", {}
    ).get("partitions"):
        problems.append("api.requests and accounts must have the same partitions")
    return problems


# --- tests -----------------------------------------------------------------------------


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def _manifests() -> list[dict]:
    docs: list[dict] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_compose_stack_is_valid() -> None:
    assert compose_problems(_compose()) == []


def test_compose_validator_rejects_broken_copies() -> None:
    broken = _compose()
    del broken["services"]["worker-2"]["depends_on"]
    broken["services"]["worker-1"]["environment"] = {
        "KAFKA_BOOTSTRAP": "k:9092",
        "XWATCH_TYPO": "1",
    }
    broken["services"]["simulator"]["command"] = ["simulate", "--no-such-flag"]
    problems = compose_problems(broken)
    assert any("worker-2: must depend on topics" in p for p in problems)
    assert any("XWATCH_TYPO" in p for p in problems)
    assert any("simulator: command" in p for p in problems)


def test_kubernetes_and_strimzi_manifests_are_valid() -> None:
    docs = _manifests()
    assert {d["kind"] for d in docs} >= {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "KafkaTopic",
    }
    assert kubernetes_problems(docs) == []


@pytest.mark.parametrize(
    ("kind", "breakage", "expected"),
    [
        ("Deployment", lambda d: d["spec"].__setitem__("replicas", "three"), "Deployment"),
        (
            "Deployment",
            lambda d: d["spec"]["template"]["spec"].__setitem__("contaners", []),
            "Deployment",
        ),
        ("KafkaTopic", lambda d: d["spec"].__setitem__("partitions", 0), "must be >= 1"),
        ("KafkaTopic", lambda d: d["spec"].__setitem__("replicas", "3"), "must be integer"),
        ("ConfigMap", lambda d: d["data"].__setitem__("XWATCH_TYPO", "1"), "XWATCH_TYPO"),
    ],
)
def test_manifest_validators_reject_broken_copies(kind, breakage, expected) -> None:
    docs = copy.deepcopy(_manifests())
    breakage(next(d for d in docs if d["kind"] == kind))
    problems = kubernetes_problems(docs)
    assert any(expected in p for p in problems), problems


def test_dockerfile_runs_the_worker_as_non_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "USER 10001" in text and 'CMD ["worker"]' in text
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert all(":" in image and "latest" not in image for image in froms), froms
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "the build context must be an allow-list (ignore all, then allow)"
