"""The connector's ``verify_webhook`` hook: Jira's WebSub ``X-Hub-Signature``."""

from __future__ import annotations

import time

import httpx

from connectors.jira import connector
from okrsync.sdk.webhooks import WebhookRequest, hub_signature

SECRET = "jira-admin-webhook-secret"
BODY = b'{"webhookEvent":"jira:issue_updated"}'


def request(headers: dict[str, str], body: bytes = BODY) -> WebhookRequest:
    return WebhookRequest(
        "POST", "https://okr.example.com/hooks/jira", httpx.Headers(headers), body, time.time()
    )


def test_the_hook_checks_x_hub_signature() -> None:
    signed = hub_signature(SECRET, BODY)
    assert connector.verify_webhook(request({"X-Hub-Signature": signed}), SECRET)
    shouted = signed.upper().replace("SHA256=", "sha256=")
    assert connector.verify_webhook(request({"X-Hub-Signature": shouted}), SECRET)
    assert not connector.verify_webhook(request({"X-Hub-Signature-256": signed}), SECRET)
    assert not connector.verify_webhook(request({"X-Hub-Signature": signed}, BODY + b" "), SECRET)
    sha1 = signed.replace("sha256", "sha1")
    assert not connector.verify_webhook(request({"X-Hub-Signature": sha1}), SECRET)
