"""``POST /hooks/{connection}`` asks the connection's connector who signed the request.

Two third-party connectors are registered in-process, as a plugin package would register them:
``acme`` brings its own ``verify_webhook`` hook, ``plain`` brings none and so gets okrsync's own
scheme. Requests go over a real socket to the API.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from okrsync.api.app import build_app
from okrsync.api.context import ApiContext
from okrsync.app import App
from okrsync.config import load_config_text
from okrsync.plugins import Registry
from okrsync.sandbox.server import SandboxServer
from okrsync.sdk.connector import ConnectionConfig, Connector, QuerySpec, Source
from okrsync.sdk.models import Query, Reading
from okrsync.sdk.webhooks import WebhookRequest, sign
from okrsync.settings import Settings

SECRET = "shared-hook-secret-42"


class ConstantConnection(ConnectionConfig):
    pass


class ConstantQuery(QuerySpec):
    value: int


class ConstantSource(Source[ConstantConnection, ConstantQuery]):
    query_model = ConstantQuery

    async def fetch_one(self, query: Query[ConstantQuery]) -> Reading:
        return Reading(query.key, Decimal(query.spec.value), "", datetime.now(UTC))


seen: list[WebhookRequest] = []


def verify_acme(request: WebhookRequest, secret: str) -> bool:
    """The vendor's scheme: the secret itself in ``X-Acme-Token`` (recorded for the test)."""
    seen.append(request)
    token: str | None = request.headers.get("x-acme-token")
    return token == secret


def verify_raising(request: WebhookRequest, secret: str) -> bool:
    raise ValueError(f"cannot parse {request.body!r}")


def verify_truthy(request: WebhookRequest, secret: str) -> bool:
    return "yes"  # type: ignore[return-value]  # a sloppy plugin: only True accepts


plain = Connector(
    type="plain",
    summary="a constant, with no webhook scheme of its own",
    connection_model=ConstantConnection,
    implementation=ConstantSource,
)
REGISTRY = Registry(
    {
        "plain": plain,
        "acme": dataclasses.replace(plain, type="acme", verify_webhook=verify_acme),
        "raising": dataclasses.replace(plain, type="raising", verify_webhook=verify_raising),
        "truthy": dataclasses.replace(plain, type="truthy", verify_webhook=verify_truthy),
    }
)
CONNECTIONS = {"crm": "acme", "plainly": "plain", "broken": "raising", "sloppy": "truthy"}
CONFIG = (
    "version: 1\nconnections:\n"
    + "".join(f"  {name}: {{type: {kind}}}\n" for name, kind in CONNECTIONS.items())
    + """\
cycles:
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  deals: {connection: crm, value: 3, schedule: every 1h}
objectives:
  - id: o
    title: Objective
    cycle: 2026-Q4
    key_results:
      - {id: deals, title: Ten deals, metric: deals, kind: increase, start: 0, target: 10}
"""
)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[str]:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in CONNECTIONS:
        (secrets / f"OKRSYNC_HOOK_SECRET_{name.upper()}").write_text(SECRET)
    settings = Settings(
        database_url=SecretStr(f"sqlite:///{tmp_path / 'okrsync.db'}"),
        secrets_dir=secrets,
        hook_debounce_seconds=60,
    )
    config = load_config_text(CONFIG, REGISTRY.connectors)
    app = App.open(settings, config=config, registry=REGISTRY)
    app.apply_definitions()
    seen.clear()
    try:
        with SandboxServer(build_app(ApiContext.from_app(app)), name="okrsync-api") as server:
            yield server.url
    finally:
        asyncio.run(app.aclose())


def okrsync_signed(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {"X-Okrsync-Timestamp": stamp, "X-Okrsync-Signature": sign(SECRET, stamp, body)}


def test_a_connectors_own_hook_verifies_its_webhooks(api: str) -> None:
    body = b'{"event": "deal.won"}'
    with httpx.Client(base_url=api) as http:
        accepted = http.post("/hooks/crm?attempt=1", content=body, headers={"X-Acme-Token": SECRET})
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["metrics"] == ["deals"]
        assert len(seen) == 1
        request = seen[0]
        assert (request.method, request.body) == ("POST", body)
        assert request.url == f"{api}/hooks/crm?attempt=1"
        assert abs(request.received_at - time.time()) < 60
        # okrsync's own signature means nothing to this connector's hook
        assert (
            http.post("/hooks/crm", content=body, headers=okrsync_signed(body)).status_code == 401
        )
        wrong = http.post("/hooks/crm", content=body, headers={"X-Acme-Token": "guess"})
        assert wrong.status_code == 401
    assert len(seen) == 3


def test_a_connector_without_the_hook_gets_okrsyncs_own_scheme(api: str) -> None:
    body = b'{"event": "anything"}'
    with httpx.Client(base_url=api) as http:
        signed = http.post("/hooks/plainly", content=body, headers=okrsync_signed(body))
        assert signed.status_code == 202, signed.text
        vendor = http.post("/hooks/plainly", content=body, headers={"X-Acme-Token": SECRET})
        assert vendor.status_code == 401
    assert seen == []  # the other connector's hook was never asked


def test_a_hook_that_raises_or_answers_other_than_true_refuses(api: str) -> None:
    body = b"{}"
    with httpx.Client(base_url=api) as http:
        for name in ("broken", "sloppy"):
            refused = http.post(f"/hooks/{name}", content=body, headers=okrsync_signed(body))
            assert refused.status_code == 401, name
            assert refused.json()["error"] == "invalid signature"
            assert "cannot parse" not in refused.text
