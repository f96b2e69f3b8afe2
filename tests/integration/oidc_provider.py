"""A real OpenID provider for the sign-in tests: panva's oidc-provider (``.ci/oidc``, installed
by ``.ci/run``), run by node on a loopback port, with its own login and consent pages."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.binaries import require_binary

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_DIR = ROOT / ".ci" / "oidc"
SCRIPT = PROVIDER_DIR / "provider.mjs"
PACKAGE = PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json"
CLIENT_ID = "okrsync-dashboard"
CLIENT_SECRET = "client-secret-for-tests-0123456789"
PASSWORD = "any password works"
STARTUP_SECONDS = 20


@dataclass
class Provider:
    issuer: str
    process: subprocess.Popen[str]


def require_provider() -> tuple[str, Path]:
    """node and the installed oidc-provider; skips (fails under CI=true) without them."""
    node = shutil.which("node")
    absent = "the OpenID provider is not installed: npm ci --prefix .ci/oidc (needs node)"
    require_binary(Path(node) if node else PROVIDER_DIR / "no-node", absent)
    require_binary(PACKAGE, absent)
    assert node is not None
    return node, SCRIPT


@contextmanager
def openid_provider(
    okrsync_url: str, accounts: Mapping[str, Mapping[str, Any]], *, end_session: bool = True
) -> Iterator[Provider]:
    """The provider, with one confidential client whose redirect and post-logout addresses are
    on ``okrsync_url``; without ``end_session`` it offers no RP-initiated logout. Stopped (by
    its PID) at the end."""
    node, script = require_provider()
    options = {
        "port": 0,
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"{okrsync_url}/auth/callback"],
                "post_logout_redirect_uris": [f"{okrsync_url}/signed-out"],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }
        ],
        "accounts": accounts,
        "endSession": end_session,
    }
    process = subprocess.Popen(
        [node, str(script), json.dumps(options)],
        cwd=PROVIDER_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "NODE_ENV": "test"},
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], STARTUP_SECONDS)
        line = process.stdout.readline() if ready else ""  # {"issuer": ...} once it listens
        if not line:
            raise RuntimeError(f"the OpenID provider stopped at start (exit {process.wait(5)})")
        yield Provider(json.loads(line)["issuer"], process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')


def sign_in_over_http(client: httpx.Client, okrsync_url: str, login: str) -> httpx.Response:
    """Signs ``login`` in the way a browser would, through the provider's login and consent
    forms (no JavaScript on them): the answer okrsync gives at the end of the callback."""
    page = client.get(f"{okrsync_url}/login", follow_redirects=True)
    assert "Sign-in" in page.text, page.text
    action = FORM_ACTION.search(page.text)
    assert action is not None
    page = client.post(
        httpx.URL(str(page.url)).join(action.group(1)),
        data={"prompt": "login", "login": login, "password": PASSWORD},
        follow_redirects=True,
    )
    if 'name="prompt" value="consent"' in page.text:
        action = FORM_ACTION.search(page.text)
        assert action is not None
        page = client.post(
            httpx.URL(str(page.url)).join(action.group(1)),
            data={"prompt": "consent"},
            follow_redirects=True,
        )
    return page
