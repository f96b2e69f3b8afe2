"""A canary secret in every credential field of every installed connector never comes out.

One config holds a connection of every installed type (two where a type has two kinds of
credential), every ``SecretStr`` field set to a value containing the canary, and each pointed at
its own sandbox fake, which refuses the credential, so every failure path writes errors. One
key result with a real value is mirrored to every sink, so the sinks fail too. Then ``sync``
(debug logs), ``plan``, ``status``, ``explain``, ``history`` and ``validate`` run as a user runs
them, and every table of the store is dumped, and the raw store file read. The canary, its
URL-encoded form and its base64 forms (in all three alignments, as inside a Basic header) must
appear nowhere.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, SecretStr
from sqlalchemy import MetaData, create_engine, select

from okrsync.plugins import load_registry
from okrsync.sandbox import Sandbox
from tests.shipped import shipped_connectors

REPO = Path(__file__).resolve().parents[2]
CANARY = "okrCanary7Qx3Lm9Tv2Wp"


def _signing_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


SIGNING_KEY = _signing_key()
KEY_LINES = [line for line in SIGNING_KEY.splitlines() if "-----" not in line]


def leaked_forms(secret: str) -> list[str]:
    """The secret as it may travel: raw, URL-encoded, base64 (std and URL-safe) at any offset."""
    forms = {secret, quote(secret, safe="")}
    raw = secret.encode()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start = (offset + 2) // 3 * 4
        end = (offset + len(raw)) // 3 * 4
        stable = encoded[start:end]
        forms.update({stable, stable.replace("+", "-").replace("/", "_")})
    return sorted(f for f in forms if len(f) >= 12)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def holds_secret(annotation: Any) -> bool:
    """``SecretStr``, or a model, container or union with one somewhere inside."""
    if annotation is SecretStr:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(holds_secret(f.annotation) for f in annotation.model_fields.values())
    return any(holds_secret(arg) for arg in get_args(annotation))


def secret_fields(model: type[BaseModel]) -> set[str]:
    return {name for name, info in model.model_fields.items() if holds_secret(info.annotation)}


def connections(urls: dict[str, str], closed: str, warehouse: Path) -> dict[str, Any]:
    """A connection of every type, with the canary in every credential, each one refused."""
    fake = {name: urls.get(name, closed) for name in load_registry().connectors}
    service_account = json.dumps(
        {
            "type": "service_account",
            "client_email": "okrsync@sandbox.iam.gserviceaccount.com",
            "private_key_id": "k1",
            "private_key": f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----\n",
            "token_uri": f"{fake['ga4']}/token",
        }
    )
    return {
        "amplitude": {
            "type": "amplitude",
            "region": fake["amplitude"],
            "api_key": CANARY,
            "secret_key": f"{CANARY}-secret",
            "max_retries": 0,
        },
        "ga4": {
            "type": "ga4",
            "property_id": "123456789",
            "credentials_json": service_account,
            "api_url": fake["ga4"],
            "max_retries": 0,
        },
        "github": {"type": "github", "token": CANARY, "base_url": fake["github"], "max_retries": 0},
        "http_json": {
            "type": "http_json",
            "url": fake["http_json"],
            "headers": {"X-Api-Key": CANARY},
            "auth": {"type": "bearer", "token": CANARY},
            "max_retries": 0,
        },
        "http_json_basic": {
            "type": "http_json",
            "url": fake["http_json"],
            "auth": {"type": "basic", "username": "okr", "password": CANARY},
            "max_retries": 0,
        },
        "hubspot": {
            "type": "hubspot",
            "access_token": CANARY,
            "base_url": fake["hubspot"],
            "max_retries": 0,
        },
        "jira": {
            "type": "jira",
            "url": fake["jira"],
            "email": "okr-bot@example.com",
            "api_token": CANARY,
        },
        "jira_dc": {
            "type": "jira",
            "url": fake["jira"],
            "deployment": "datacenter",
            "personal_access_token": CANARY,
        },
        "linear": {
            "type": "linear",
            "api_key": CANARY,
            "base_url": fake["linear"],
            "webhook_secret": f"{CANARY}-hook",
        },
        "linear_oauth": {"type": "linear", "access_token": CANARY, "base_url": fake["linear"]},
        "mixpanel": {
            "type": "mixpanel",
            "region": fake["mixpanel"],
            "project_id": 2195193,
            "service_account_username": "okrsync.sandbox.mp-service-account",
            "service_account_secret": CANARY,
            "max_retries": 0,
        },
        "pipedrive": {
            "type": "pipedrive",
            "url": fake["pipedrive"],
            "api_token": CANARY,
            "max_retries": 0,
        },
        "pipedrive_query": {
            "type": "pipedrive",
            "url": fake["pipedrive"],
            "api_token": CANARY,
            "token_in": "query",
            "max_retries": 0,
        },
        "posthog": {
            "type": "posthog",
            "host": fake["posthog"],
            "project_id": 12345,
            "personal_api_key": CANARY,
            "max_retries": 0,
        },
        "prometheus": {
            "type": "prometheus",
            "url": fake["prometheus"],
            "auth": {"type": "bearer", "token": CANARY},
            "max_retries": 0,
        },
        "prometheus_basic": {
            "type": "prometheus",
            "url": fake["prometheus"],
            "auth": {"type": "basic", "username": "okr", "password": CANARY},
            "max_retries": 0,
        },
        "salesforce": {
            "type": "salesforce",
            "login_url": fake["salesforce"],
            "auth": {"flow": "client_credentials", "client_id": "okrsync", "client_secret": CANARY},
            "max_retries": 0,
        },
        "salesforce_jwt": {
            "type": "salesforce",
            "login_url": fake["salesforce"],
            "auth": {
                "flow": "jwt_bearer",
                "client_id": "okrsync",
                "username": "okr@example.com",
                "private_key": SIGNING_KEY,  # must be a real key: its lines are canaries too
            },
            "max_retries": 0,
        },
        "slack": {
            "type": "slack",
            "token": f"xoxb-{CANARY}",
            "base_url": f"{fake['slack']}/api/",
            "signing_secret": f"{CANARY}-signing",
        },
        "sql": {"type": "sql", "url": f"postgresql+psycopg://okr:{CANARY}@{closed[7:]}/okr"},
        "warehouse": {"type": "sql", "url": f"sqlite:///{warehouse}"},
        "teams": {
            "type": "teams",
            "webhook_url": (
                f"{fake['teams']}/workflows/okr/triggers/manual/paths/invoke?sig={CANARY}"
            ),
        },
        "webhook": {
            "type": "webhook",
            "url": f"{fake['webhook']}/okr",
            "secret": CANARY,
            "headers": {"Authorization": f"Bearer {CANARY}"},
        },
    }


METRICS: dict[str, dict[str, Any]] = {
    "amplitude": {"event_type": "Play Song", "metric": "totals"},
    "ga4": {"metric": "conversions"},
    "github": {"repo": "acme/api", "search": "is:issue is:closed"},
    "http_json": {"request_path": "/v1/deals/summary", "json_path": "$.total"},
    "http_json_basic": {"request_path": "/v1/deals/summary", "json_path": "$.total"},
    "hubspot": {"object": "contacts"},
    "jira": {"jql": "project = OKR"},
    "jira_dc": {"jql": "project = OKR"},
    "linear": {"project": "Checkout revamp", "state_type": "completed"},
    "linear_oauth": {"project": "Checkout revamp", "state_type": "completed"},
    "mixpanel": {"event": "Started trial", "type": "unique"},
    "pipedrive": {"measure": "value"},
    "pipedrive_query": {"measure": "value"},
    "posthog": {"hogql": "SELECT count() FROM events"},
    "prometheus": {"query": "up"},
    "prometheus_basic": {"query": "up"},
    "salesforce": {"soql": "SELECT COUNT(Id) FROM Opportunity"},
    "salesforce_jwt": {"soql": "SELECT COUNT(Id) FROM Opportunity"},
    "sql": {"query": "SELECT 1"},
    "warehouse": {"query": "SELECT 42"},
}
MIRRORS: list[dict[str, Any]] = [
    {"connection": "webhook"},
    {"connection": "slack", "channel": "C0OKRS0001"},
    {"connection": "jira", "issue": "OKR-1"},
    {"connection": "jira_dc", "issue": "OKR-2"},
    {"connection": "github", "repo": "acme/api", "issue": 1},
    {"connection": "linear", "project": "Checkout revamp"},
    {"connection": "linear_oauth", "project": "Checkout revamp"},
    {"connection": "teams"},
]


def config_text(urls: dict[str, str], closed: str, warehouse: Path) -> str:
    key_results = [
        {
            "id": name.replace("_", "-"),
            "title": f"From {name}",
            "metric": f"m_{name}",
            "kind": "increase",
            "start": 0,
            "target": 100,
            "mirrors": MIRRORS if name == "warehouse" else [],
        }
        for name in METRICS
    ]
    config = {
        "version": 1,
        "connections": connections(urls, closed, warehouse),
        "cycles": [{"id": "2026-Q4", "start": "2026-10-01", "end": "2026-12-31"}],
        "metrics": {
            f"m_{name}": {"connection": name, **spec, "schedule": "every 1h"}
            for name, spec in METRICS.items()
        },
        "objectives": [
            {
                "id": "canary",
                "title": "Keep secrets",
                "cycle": "2026-Q4",
                "key_results": key_results,
            }
        ],
    }
    return json.dumps(config, indent=2)


@pytest.fixture
def fakes() -> Iterator[dict[str, str]]:
    """Every installed connector's own fake that starts without arguments, by connector type."""
    apps: dict[str, Any] = {}
    for name, connector in load_registry().connectors.items():
        if connector.fake is None:
            continue
        try:
            apps[name] = connector.fake()
        except TypeError:
            continue
    with Sandbox(apps) as sandbox:
        yield sandbox.urls


class Cli:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.outputs: list[tuple[str, str]] = []

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "okrsync", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        self.outputs.append((" ".join(args), done.stdout + done.stderr))
        return done


def dump_store(url: str) -> str:
    engine = create_engine(url)
    lines: list[str] = []
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            for table in metadata.sorted_tables:
                for row in conn.execute(select(table)):
                    lines.append(f"{table.name}: {tuple(row)!r}")
    finally:
        engine.dispose()
    return "\n".join(lines)


def http_answers(env: dict[str, str], key_results: list[str]) -> list[tuple[str, str]]:
    """``okrsync run`` on the canary store: every read route, the dashboard, metrics, and writes
    refused for a wrong token — all of it must be free of the canary too."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = subprocess.Popen(
        [sys.executable, "-m", "okrsync", "run", "--port", str(port)],
        cwd=REPO,
        env={**env, "OKRSYNC_API_TOKEN": f"tok-{CANARY}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    signed_in = {"Authorization": f"Bearer tok-{CANARY}"}  # reads need a token (issue 17)
    answers: list[tuple[str, str]] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        paths = [
            "/",
            "/readyz",
            "/metrics",
            "/api/v1/openapi.json",
            "/api/v1/cycles",
            "/api/v1/objectives",
            "/api/v1/key-results",
            "/api/v1/runs",
            "/api/v1/deliveries",
            "/api/v1/connections",
            *(f"/api/v1/key-results/{kr}" for kr in key_results),
            *(f"/api/v1/key-results/{kr}/measurements" for kr in key_results),
        ]
        objectives = httpx.get(f"{base}/api/v1/objectives", headers=signed_in, timeout=10).json()
        for objective in (
            objectives if isinstance(objectives, list) else objectives.get("items", [])
        ):
            paths.append(f"/objectives/{objective['id']}")
        for path in paths:
            answer = httpx.get(f"{base}{path}", headers=signed_in, timeout=30)
            assert answer.status_code in (200, 503), (path, answer.status_code)  # 503: /readyz
            answers.append((f"GET {path} {answer.status_code}", answer.text))
        wrong = httpx.post(
            f"{base}/api/v1/sync", headers={"Authorization": f"Bearer {CANARY}"}, timeout=10
        )
        assert wrong.status_code == 401
        answers.append((f"POST /api/v1/sync {wrong.status_code}", wrong.text))
    finally:
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=30)
    answers.append(("okrsync run log", output))
    return answers


def test_every_credential_field_of_every_connector_is_covered() -> None:
    """A new connector, or a new secret field, must get the canary in this test."""
    config = connections({}, "http://127.0.0.1:9", Path("/x.db"))
    missing: list[str] = []
    for name, connector in shipped_connectors().items():
        used = {key for c in config.values() if c["type"] == name for key in c}
        missing += [f"{name}.{f}" for f in secret_fields(connector.connection_model) - used]
    assert not missing, f"credential fields without the canary: {missing}"


@pytest.mark.timeout(360)  # ~60 CLI processes: over the default 120 s on a loaded 2-core machine
def test_the_canary_appears_in_no_output_log_or_store(
    fakes: dict[str, str], tmp_path: Path
) -> None:
    warehouse = tmp_path / "warehouse.db"
    sqlite3.connect(warehouse).close()
    store = tmp_path / "store.db"
    config = tmp_path / "okrsync.yaml"
    config.write_text(config_text(fakes, closed_port_url(), warehouse))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")},
        "OKRSYNC_CONFIG": str(config),
        "OKRSYNC_DATABASE_URL": f"sqlite:///{store}",
        "OKRSYNC_LOG_LEVEL": "debug",
        "OKRSYNC_LOG_FORMAT": "json",
        "COLUMNS": "200",
    }
    cli = Cli(env)
    validated = cli("validate")
    assert validated.returncode == 0, validated.stderr
    synced = cli("sync", "--json")
    assert synced.returncode == 1  # every canary connection failed, and said so
    report = json.loads(synced.stdout)
    assert report["changed"] >= 1 and report["delivery_failures"] >= len(MIRRORS) - 1
    assert len(report["errors"]) >= len(METRICS) // 2
    cli("sync")  # the human form too, with the deliveries retried or still waiting
    cli("plan")
    cli("plan", "--json")
    cli("status")
    cli("status", "--json")
    reads = [
        (command, name.replace("_", "-"), *extra)
        for name in METRICS
        for command, *extra in (("explain",), ("explain", "--json"), ("history", "--json"))
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda args: cli(*args), reads))
    cli.outputs.extend(http_answers(env, [name.replace("_", "-") for name in METRICS]))
    everything = [*cli.outputs, ("store tables", dump_store(f"sqlite:///{store}"))]
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("store.db*"))
    everything.append(("store file bytes", raw.decode("latin-1")))

    sync_log = everything[1][1]
    assert "connection_failed" in sync_log and "delivery_failed" in sync_log
    leaks = [
        f"{where}: ...{text[max(text.find(form) - 200, 0) : text.find(form) + 60]}..."
        for where, text in everything
        for form in [*leaked_forms(CANARY), *KEY_LINES]
        if form in text
    ]
    assert not leaks, "the canary leaked:\n" + "\n\n".join(leaks[:10])
