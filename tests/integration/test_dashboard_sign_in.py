"""The dashboard behind OpenID Connect sign-in, against a real provider (panva's oidc-provider,
tests/integration/oidc_provider.py) over real sockets, and once in Chromium end to end."""

from __future__ import annotations

import asyncio
import re
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from okrsync.api.app import build_app
from okrsync.api.context import ApiContext
from okrsync.api.oidc import SESSION_COOKIE
from okrsync.app import App
from okrsync.sandbox.server import SandboxServer
from okrsync.settings import Settings
from okrsync.store.db import session_scope
from okrsync.store.tables import MeasurementRow
from tests.integration.oidc_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    Provider,
    openid_provider,
    sign_in_over_http,
)
from tests.integration.test_dashboard import CHROMIUM, CHROMIUM_ARGS

SESSION_SECRET = "session-secret-for-tests-0123456789abcdef"
API_TOKEN = "api-token-for-tests-0123456789"
ACCOUNTS = {
    "ada@example.com": {"name": "Ada Lovelace", "groups": ["okr-editors", "staff"]},
    "bob@example.com": {"name": "Bob Viewer", "groups": ["staff"]},
    "mallory@elsewhere.org": {"name": "Mallory", "groups": ["okr-editors"]},
}

CONFIG = """\
version: 1
connections:
  warehouse: {type: sql, url: "sqlite:///WAREHOUSE"}
cycles:
  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  deals: {connection: warehouse, query: "SELECT COUNT(*) FROM deals"}
  calls: {connection: warehouse, query: "SELECT 0", schedule: every 1d}
objectives:
  - id: sales
    title: Grow sales
    cycle: 2026-Q4
    owner: okr-editors
    key_results:
      - {id: deals, title: Ten deals, metric: deals, kind: increase, start: 0, target: 10}
      - {id: calls, title: Forty calls, metric: calls, kind: increase, start: 0, target: 40}
"""


@dataclass
class Signed:
    url: str
    issuer: str
    app: App


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[str, Provider]]:
    """The provider, started once for this file, and okrsync's address it knows."""
    url = f"http://127.0.0.1:{free_port()}"
    with openid_provider(url, ACCOUNTS) as started:
        yield url, started


@contextmanager
def serving(
    tmp_path: Path, database_url: str, url: str, issuer: str, *, public_read: bool = False
) -> Iterator[Signed]:
    """okrsync at ``url`` (a store that has run one sync), signing in at ``issuer``."""
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE deals (id INTEGER PRIMARY KEY)")
        db.executemany("INSERT INTO deals DEFAULT VALUES", [()] * 3)
    (tmp_path / "okrsync.yaml").write_text(CONFIG.replace("WAREHOUSE", str(warehouse)))
    settings = Settings(
        config=tmp_path / "okrsync.yaml",
        database_url=SecretStr(database_url),
        oidc_issuer=issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=SecretStr(CLIENT_SECRET),
        oidc_base_url=url,
        oidc_allowed_domains="example.com",
        oidc_scopes="openid email profile groups",
        session_secret=SecretStr(SESSION_SECRET),
        api_token=SecretStr(API_TOKEN),
        public_read=public_read,
    )
    app = App.open(settings, clock=lambda: datetime(2026, 10, 20, 9, tzinfo=UTC))
    try:
        app.apply_definitions()
        asyncio.run(app.sync.run_once(trigger="manual", dispatch=False))
        port = int(urlsplit(url).port or 0)
        with SandboxServer(build_app(ApiContext.from_app(app)), name="okrsync", port=port):
            yield Signed(url, issuer, app)
    finally:
        asyncio.run(app.aclose())


@pytest.fixture
def signed(
    tmp_path: Path, request: pytest.FixtureRequest, provider: tuple[str, Provider]
) -> Iterator[Signed]:
    """okrsync with sign-in through the real provider; the store is SQLite unless the test
    asks for ``database_url`` (then both stores). Each test signs in afresh (its own cookies)."""
    database_url = (
        request.getfixturevalue("database_url")
        if "database_url" in request.fixturenames
        else f"sqlite:///{tmp_path / 'store.db'}"
    )
    with serving(tmp_path, database_url, provider[0], provider[1].issuer) as service:
        yield service


def test_a_page_sends_a_stranger_to_the_providers_authorize_endpoint(signed: Signed) -> None:
    with httpx.Client() as client:
        first = client.get(f"{signed.url}/objectives/sales?page=1")
        assert first.status_code == 303
        assert first.headers["location"] == "/login?next=/objectives/sales%3Fpage%3D1"
        login = client.get(signed.url + first.headers["location"])
        metadata = client.get(f"{signed.issuer}/.well-known/openid-configuration").json()
    assert login.status_code == 302
    target = urlsplit(login.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == metadata["authorization_endpoint"]
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == f"{signed.url}/auth/callback"
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    assert set(query["scope"].split()) == {"openid", "email", "profile", "groups"}
    assert len(query["state"]) >= 20 and len(query["nonce"]) >= 20
    cookie = login.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()  # the base URL is http (this machine)
    assert CLIENT_SECRET not in login.text


def test_a_token_reads_the_dashboard_without_signing_in(signed: Signed) -> None:
    with httpx.Client() as client:
        read = client.get(f"{signed.url}/", headers={"Authorization": f"Bearer {API_TOKEN}"})
        wrong = client.get(f"{signed.url}/", headers={"Authorization": "Bearer nope"})
    assert read.status_code == 200 and "Grow sales" in read.text
    assert "Log out" not in read.text  # a token is nobody to sign out
    assert wrong.status_code == 401  # a script is told, not sent to a login page
    assert wrong.headers["www-authenticate"].startswith("Bearer")


def test_with_public_reads_a_stranger_reads_and_is_offered_sign_in(
    tmp_path: Path, provider: tuple[str, Provider]
) -> None:
    database_url = f"sqlite:///{tmp_path / 'store.db'}"
    with (
        serving(tmp_path, database_url, provider[0], provider[1].issuer, public_read=True) as up,
        httpx.Client() as client,
    ):
        page = client.get(f"{up.url}/objectives/sales")
        assert page.status_code == 200 and "Forty calls" in page.text
        assert '<a class="who" href="/login?next=/objectives/sales">Sign in</a>' in page.text
        assert 'class="check-in"' not in page.text and "Log out" not in page.text
        sign_in_over_http(client, up.url, "ada@example.com")
        page = client.get(f"{up.url}/objectives/sales")
        assert "Log out" in page.text and 'class="check-in"' in page.text


def test_a_callback_with_another_state_is_refused(signed: Signed) -> None:
    with httpx.Client() as client:
        login = client.get(f"{signed.url}/login")
        state = parse_qs(urlsplit(login.headers["location"]).query)["state"][0]
        forged = client.get(f"{signed.url}/auth/callback", params={"code": "x", "state": "y"})
        again = client.get(f"{signed.url}/auth/callback", params={"code": "x", "state": state})
        still = client.get(f"{signed.url}/")
    assert forged.status_code == 400
    assert "Sign-in failed" in forged.text
    assert again.status_code == 400  # its state was used up by the refusal: no second try
    assert still.status_code == 303  # not signed in


def test_a_person_from_a_domain_not_allowed_is_refused(signed: Signed) -> None:
    with httpx.Client() as client:
        refused = sign_in_over_http(client, signed.url, "mallory@elsewhere.org")
        after = client.get(f"{signed.url}/")
    assert refused.status_code == 403
    assert str(refused.url).startswith(f"{signed.url}/auth/callback")
    assert "mallory@elsewhere.org is not an address of a domain allowed" in refused.text
    assert after.status_code == 303


def recorded(app: App, key_result: str) -> list[MeasurementRow]:
    """The values checked in by hand."""
    with session_scope(app.engine) as session:
        query = select(MeasurementRow).where(
            MeasurementRow.key_result_id == key_result, MeasurementRow.origin == "manual"
        )
        return list(session.exec(query.order_by(col(MeasurementRow.id))))


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def test_forms_need_the_sessions_token(signed: Signed, database_url: str) -> None:
    with httpx.Client() as client:
        page = sign_in_over_http(client, signed.url, "ada@example.com")
        assert page.status_code == 200 and "Ada Lovelace" in page.text
        page = client.get(f"{signed.url}/objectives/sales")
        token = CSRF.search(page.text)
        assert token is not None
        form = {"value": "7", "confidence": "8", "note": "from the dashboard"}
        check_in = f"{signed.url}/key-results/calls/check-in"
        missing = client.post(check_in, data=form)
        wrong = client.post(check_in, data={**form, "csrf": token.group(1) + "x"})
        logout = client.post(f"{signed.url}/logout", data={})
        assert [missing.status_code, wrong.status_code, logout.status_code] == [403, 403, 403]
        assert recorded(signed.app, "calls") == []
        done = client.post(check_in, data={**form, "csrf": token.group(1)})
        assert done.status_code == 303
        assert done.headers["location"] == "/objectives/sales#kr-calls"
        shown = client.get(signed.url + done.headers["location"])
    assert "Checked in 7, confidence 8 on “Forty calls”." in shown.text
    [row] = recorded(signed.app, "calls")
    assert row.value == Decimal(7) and row.origin == "manual"
    assert row.note == "from the dashboard"
    assert row.author == "ada@example.com" and row.confidence == 8
    assert row.provenance is not None
    assert row.provenance[0]["source"] == "dashboard"


def test_only_owners_get_the_form_and_may_post_it(signed: Signed) -> None:
    with httpx.Client() as client:
        sign_in_over_http(client, signed.url, "bob@example.com")
        page = client.get(f"{signed.url}/objectives/sales")
        assert page.status_code == 200 and "Bob Viewer" in page.text
        assert "check-in" not in page.text.split("<main", 1)[1]
        token = CSRF.search(page.text)  # the logout form's
        assert token is not None
        refused = client.post(
            f"{signed.url}/key-results/calls/check-in", data={"value": "1", "csrf": token[1]}
        )
    assert refused.status_code == 403
    assert recorded(signed.app, "calls") == []


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
async def test_sign_in_check_in_and_sign_out_in_chromium(signed: Signed) -> None:
    from playwright.async_api import Route, async_playwright

    async def loopback_only(route: Route) -> None:  # the provider's pages link a web font
        host = urlsplit(route.request.url).hostname
        await (route.continue_() if host == "127.0.0.1" else route.abort())

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context()
            await context.route("**/*", loopback_only)
            page = await context.new_page()
            await page.goto(f"{signed.url}/objectives/sales")
            assert page.url.startswith(signed.issuer)  # the provider's login page
            await page.fill("input[name=login]", "ada@example.com")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.click("button:has-text('Continue')")  # consent
            await page.wait_for_url(f"{signed.url}/objectives/sales")
            assert await page.locator(".who").inner_text() == "Ada Lovelace\nLog out"
            card = page.locator("#kr-calls")
            await card.locator("input[name=value]").fill("12.5")
            await card.locator("select[name=confidence]").select_option("6")
            await card.locator("input[name=note]").fill("counted by hand")
            await card.locator("button[type=submit]").click()
            await page.wait_for_selector(".flash")
            assert (
                await page.locator(".flash").inner_text()
                == "Checked in 12.5, confidence 6 on “Forty calls”."
            )
            # a count shows no decimals (the unit's default): 12.5 reads 13
            assert "13 / 40" in await page.locator("#kr-calls .big-numbers").inner_text()
            await page.click(".who button")
            await page.click("button:has-text('Yes, sign me out')")  # the provider asks
            await page.wait_for_url(f"{signed.url}/signed-out*")
            assert "You have signed out" in await page.content()
            cookies = [c["name"] for c in await context.cookies(signed.url)]
            assert SESSION_COOKIE not in cookies
            await page.goto(f"{signed.url}/")
            assert page.url.startswith(signed.issuer)  # signed out here and there: log in again
            assert await page.locator("input[name=login]").count() == 1
        finally:
            await browser.close()
    [row] = recorded(signed.app, "calls")
    assert row.value == Decimal("12.5") and row.confidence == 6
    assert row.author == "ada@example.com" and row.note == "counted by hand"


def test_without_an_end_session_endpoint_logout_is_okrsyncs_own(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        openid_provider(url, ACCOUNTS, end_session=False) as provider,
        serving(tmp_path, f"sqlite:///{tmp_path / 'store.db'}", url, provider.issuer) as signed,
        httpx.Client() as client,
    ):
        metadata = client.get(f"{provider.issuer}/.well-known/openid-configuration").json()
        assert "end_session_endpoint" not in metadata
        page = sign_in_over_http(client, signed.url, "ada@example.com")
        token = CSRF.search(page.text)
        assert token is not None
        out = client.post(f"{signed.url}/logout", data={"csrf": token[1]})
        assert out.status_code == 303
        assert out.headers["location"] == f"{signed.url}/signed-out"
        assert client.get(out.headers["location"]).status_code == 200
        assert client.get(f"{signed.url}/").status_code == 303  # signed out of okrsync


def test_the_session_does_not_sign_json_writes_in(signed: Signed) -> None:
    """A cookie alone never writes through the JSON API: the session is not read there."""
    with httpx.Client() as client:
        sign_in_over_http(client, signed.url, "ada@example.com")
        assert SESSION_COOKIE in client.cookies
        check_in = client.post(
            f"{signed.url}/api/v1/key-results/calls/check-ins", json={"value": 5}
        )
        with_token = client.post(
            f"{signed.url}/api/v1/key-results/calls/check-ins",
            json={"value": 6},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
    assert check_in.status_code == 401
    assert with_token.status_code == 201
    assert [row.value for row in recorded(signed.app, "calls")] == [Decimal(6)]


async def test_the_session_is_read_for_pages_and_api_reads_only() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from okrsync.api.oidc import PageSessions

    async def probe(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str("session" in request.scope))

    paths = ["/", "/api/v1/key-results/x/check-ins", "/key-results/x/check-in"]
    inner = Starlette(routes=[Route(p, probe, methods=["GET", "POST"]) for p in paths])
    app = PageSessions(inner, secret_key=SESSION_SECRET, same_site="lax")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        seen = {
            (method, path): (await client.request(method, path)).text
            for method in ("GET", "POST")
            for path in paths
        }
    assert seen == {
        ("GET", "/"): "True",
        ("GET", "/api/v1/key-results/x/check-ins"): "True",
        ("GET", "/key-results/x/check-in"): "True",
        ("POST", "/"): "True",
        ("POST", "/api/v1/key-results/x/check-ins"): "False",
        ("POST", "/key-results/x/check-in"): "True",
    }
