"""Who may read and write the API, on a real socket, on SQLite and PostgreSQL: scoped tokens made
with ``okrsync token create``, a trusted proxy's headers, owners' check-ins, public reads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import select
from structlog.testing import capture_logs
from typer.testing import CliRunner, Result

from okrsync import cli
from okrsync.api.principal import warn_when_exposed
from okrsync.store.api_tokens import USED_EVERY, create_token, revoke_token, token_hash
from okrsync.store.db import make_engine, session_scope
from okrsync.store.tables import ApiTokenRow
from tests.integration.api_support import TOKEN, api_service, write_config

OBJECTIVES = "/api/v1/objectives"
CHECK_IN = "/api/v1/key-results/deals/check-ins"


def okrsync(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    return subprocess.run(
        [sys.executable, "-m", "okrsync", *args, "--database-url", database_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def in_process(database_url: str, *args: str) -> Result:
    """The same command, run in this process (quicker than a new interpreter)."""
    return CliRunner().invoke(cli.app, [*args, "--database-url", database_url])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def stored_text(database_url: str) -> str:
    """Everything the store holds about tokens, as text: the SQLite file's bytes, or every
    column of every ``api_tokens`` row on PostgreSQL."""
    if database_url.startswith("sqlite:///"):
        # read in another process: closing a descriptor of the file here would drop the locks
        # the server's SQLite connections hold on it (POSIX locks are per process)
        path = database_url.removeprefix("sqlite:///")
        dump = (
            "import sys\nfor p in sys.argv[1:]:\n    sys.stdout.buffer.write(open(p, 'rb').read())"
        )
        files = [f for f in (path, f"{path}-wal") if Path(f).exists()]
        read = subprocess.run([sys.executable, "-c", dump, *files], capture_output=True, check=True)
        return read.stdout.decode("latin-1")
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM api_tokens")).all()
    finally:
        engine.dispose()
    return repr(rows)


def test_a_read_token_reads_cannot_check_in_and_stops_when_revoked(
    tmp_path: Path, database_url: str
) -> None:
    with (
        api_service(tmp_path, database_url, token=None, public_read=False) as svc,
        httpx.Client(base_url=svc.url) as http,
    ):
        refused = http.get(OBJECTIVES)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert http.get("/api/v1/openapi.json").status_code == 200  # the description is open
        assert http.get("/healthz").status_code == 200

        made = okrsync(database_url, "token", "create", "--name", "wall", "--scope", "read")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        assert token.startswith("oks_") and len(token) > 40
        assert token not in made.stderr

        read = http.get(OBJECTIVES, headers=bearer(token))
        assert read.status_code == 200, read.text
        assert read.json()["objectives"][0]["id"] == "o"
        assert http.head(OBJECTIVES, headers=bearer(token)).status_code == 200
        for path in ("/api/v1/runs", "/api/v1/deliveries", "/api/v1/connections"):
            assert http.get(path).status_code == 401, path
            assert http.get(path, headers=bearer(token)).status_code == 200, path
        assert http.get(OBJECTIVES, headers=bearer(token + "x")).json()["error"] == "invalid token"

        write = http.post(CHECK_IN, json={"value": 5}, headers=bearer(token))
        assert write.status_code == 403
        assert "check_in" in write.json()["detail"]
        assert http.post("/api/v1/sync", headers=bearer(token)).status_code == 403

        listed = in_process(database_url, "token", "list", "--json")
        assert listed.exit_code == 0, listed.output
        (shown,) = json.loads(listed.stdout)["tokens"]
        assert (shown["name"], shown["scopes"], shown["revoked_at"]) == ("wall", ["read"], None)
        assert token.startswith(shown["prefix"]) and len(shown["prefix"]) < 12
        assert shown["last_used_at"] is not None  # the reads above
        assert token not in listed.stdout
        stored = stored_text(database_url)
        assert token_hash(token) in stored  # what is kept, read where it is kept
        assert token not in stored

        again = in_process(database_url, "token", "create", "--name", "wall", "--scope", "admin")
        assert again.exit_code == 1 and "exists already" in again.output

        revoked = in_process(database_url, "token", "revoke", "wall")
        assert revoked.exit_code == 0, revoked.output
        gone = http.get(OBJECTIVES, headers=bearer(token))
        assert gone.status_code == 401
        assert gone.json()["error"] == "invalid token"
        assert in_process(database_url, "token", "revoke", "nope").exit_code == 1


def test_scopes_decide_writes_and_the_environment_token_has_them_all(
    tmp_path: Path, database_url: str
) -> None:
    with (
        api_service(tmp_path, database_url, public_read=False) as svc,
        httpx.Client(base_url=svc.url) as http,
    ):
        engine = svc.app.engine
        now = svc.ctx.clock()
        svc.ctx.clock = lambda: now  # the API's clock, which stamps last_used_at
        _, writer = create_token(engine, "ci", ["check_in"], now)
        _, both = create_token(engine, "bot", ["read", "check_in"], now)
        assert http.get(OBJECTIVES, headers=bearer(writer)).status_code == 403  # no read
        checked = http.post(CHECK_IN, json={"value": 4}, headers=bearer(writer))
        assert checked.status_code == 201, checked.text
        assert checked.json()["measurement"]["author"] == "token:ci"
        assert http.post("/api/v1/sync", headers=bearer(both)).status_code == 403  # no admin
        assert http.get(OBJECTIVES, headers=bearer(TOKEN)).status_code == 200
        by_env = http.post(CHECK_IN, json={"value": 6}, headers=bearer(TOKEN))
        assert by_env.status_code == 201, by_env.text
        assert by_env.json()["measurement"]["author"] == "api"  # as before tokens had names
        assert http.post("/api/v1/sync", headers=bearer(TOKEN)).status_code == 202
        with session_scope(engine) as session:
            row = session.exec(select(ApiTokenRow).where(ApiTokenRow.name == "ci")).one()
            first_use = row.last_used_at
        assert first_use == now
        # used again within USED_EVERY: last_used_at is not rewritten on every request
        svc.ctx.clock = lambda: now + USED_EVERY / 2
        assert http.post(CHECK_IN, json={"value": 5}, headers=bearer(writer)).status_code == 201
        svc.ctx.clock = lambda: now + USED_EVERY + timedelta(seconds=1)
        assert http.post(CHECK_IN, json={"value": 7}, headers=bearer(writer)).status_code == 201
        with session_scope(engine) as session:
            row = session.exec(select(ApiTokenRow).where(ApiTokenRow.name == "ci")).one()
            assert row.last_used_at == now + USED_EVERY + timedelta(seconds=1)


def test_proxy_headers_count_only_from_a_trusted_address(tmp_path: Path, database_url: str) -> None:
    ann = {"X-Forwarded-Email": "ann@example.com", "X-Forwarded-Groups": "sales,eng"}
    bob = {"X-Forwarded-Email": "bob@example.com", "X-Forwarded-Groups": "marketing"}
    root = {"X-Forwarded-Email": "root@example.com", "X-Forwarded-Groups": "okr-admins"}
    with (
        api_service(
            tmp_path,
            database_url,
            token=None,
            public_read=False,
            owner="sales",
            trusted_proxies="127.0.0.1",
            admin_groups="okr-admins",
        ) as svc,
        httpx.Client(base_url=svc.url) as http,
    ):
        assert http.get(OBJECTIVES).status_code == 401
        assert http.get(OBJECTIVES, headers=ann).status_code == 200
        assert http.get("/", headers=ann).status_code == 200  # the dashboard
        assert http.get("/").status_code == 401
        # owners check in: ann is in the objective's owner group, bob is not, root is an admin
        by_ann = http.post(CHECK_IN, json={"value": 4}, headers=ann)
        assert by_ann.status_code == 201, by_ann.text
        assert by_ann.json()["measurement"]["author"] == "ann@example.com"
        refused = http.post(CHECK_IN, json={"value": 5}, headers=bob)
        assert refused.status_code == 403
        assert refused.json()["error"] == "not an owner"
        assert http.post(CHECK_IN, json={"value": 6}, headers=root).status_code == 201
        assert http.post("/api/v1/sync", headers=ann).status_code == 403
        assert http.post("/api/v1/sync", headers=root).status_code == 202


@pytest.fixture
def untrusting(tmp_path: Path, database_url: str) -> Iterator[httpx.Client]:
    with (
        api_service(
            tmp_path, database_url, token=None, public_read=False, trusted_proxies="10.0.0.0/8"
        ) as svc,
        httpx.Client(base_url=svc.url) as http,
    ):
        yield http


def test_proxy_headers_from_elsewhere_are_ignored(untrusting: httpx.Client) -> None:
    spoofed = {
        "X-Forwarded-Email": "root@example.com",
        "X-Forwarded-For": "10.0.0.1",  # the peer is the socket's, never a header's
        "X-Real-IP": "10.0.0.1",
    }
    assert untrusting.get(OBJECTIVES, headers=spoofed).status_code == 401
    assert untrusting.get("/", headers=spoofed).status_code == 401
    check_in = untrusting.post(CHECK_IN, json={"value": 1}, headers=spoofed)
    assert check_in.status_code == 401


def test_public_reads_open_reads_only(tmp_path: Path, database_url: str) -> None:
    with (
        api_service(tmp_path, database_url, token=None, public_read=True) as svc,
        httpx.Client(base_url=svc.url) as http,
    ):
        assert http.get(OBJECTIVES).status_code == 200
        assert http.get("/").status_code == 200
        _, writer = create_token(svc.app.engine, "ci", ["check_in"], svc.ctx.clock())
        assert http.get(OBJECTIVES, headers=bearer(writer)).status_code == 200  # reads as anyone
        assert http.post(CHECK_IN, json={"value": 1}).status_code == 401  # public reads only
        # and nothing listening beyond loopback is warned about when reads are public
        assert not warn_when_exposed(svc.app.settings, svc.app.engine, "0.0.0.0")


def test_listening_beyond_loopback_with_no_sign_in_warns(tmp_path: Path, database_url: str) -> None:
    with api_service(tmp_path, database_url, token=None, public_read=False) as svc:
        settings, engine = svc.app.settings, svc.app.engine
        with capture_logs() as logs:
            assert warn_when_exposed(settings, engine, "0.0.0.0")
            assert not warn_when_exposed(settings, engine, "127.0.0.1")
            assert not warn_when_exposed(settings, engine, "::1")
        assert [e["event"] for e in logs] == ["http_without_sign_in"]
        create_token(engine, "wall", ["read"], svc.ctx.clock())
        assert not warn_when_exposed(settings, engine, "0.0.0.0")
        revoke_token(engine, "wall", svc.ctx.clock())
        assert warn_when_exposed(settings, engine, "::")


def test_okrsync_run_beyond_loopback_with_nothing_to_sign_in_says_so(tmp_path: Path) -> None:
    """The daemon's start, not just the rule: the warning comes before HTTP starts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env |= {
        "OKRSYNC_CONFIG": str(write_config(tmp_path)),
        "OKRSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "OKRSYNC_LOG_FORMAT": "json",
    }
    daemon = subprocess.Popen(
        [sys.executable, "-m", "okrsync", "run", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    events = []
    watchdog = threading.Timer(60, daemon.kill)  # a daemon that never starts HTTP ends the loop
    watchdog.start()
    try:
        assert daemon.stdout is not None
        for line in daemon.stdout:
            if line.startswith("{"):
                events.append(json.loads(line)["event"])
            if "http_started" in events:
                break
    finally:
        watchdog.cancel()
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)
    assert events.index("http_without_sign_in") < events.index("http_started")
