"""The connector's ``verify_webhook`` hook: GitHub's ``X-Hub-Signature-256``."""

from __future__ import annotations

import time

import httpx

from connectors.github import connector
from okrsync.sdk.webhooks import WebhookRequest, hub_signature

SECRET = "It's a Secret to Everybody"
BODY = b'{"action":"closed","issue":{"number":7}}'


def request(headers: dict[str, str], body: bytes = BODY) -> WebhookRequest:
    return WebhookRequest(
        "POST", "https://okr.example.com/hooks/gh", httpx.Headers(headers), body, time.time()
    )


def test_the_hook_checks_x_hub_signature_256() -> None:
    signed = hub_signature(SECRET, BODY)
    assert connector.verify_webhook(request({"X-Hub-Signature-256": signed}), SECRET)
    assert not connector.verify_webhook(request({"X-Hub-Signature": signed}), SECRET)  # SHA-1's
    assert not connector.verify_webhook(request({"X-Hub-Signature-256": signed}), "other")
    tampered = request({"X-Hub-Signature-256": signed}, BODY + b" ")
    assert not connector.verify_webhook(tampered, SECRET)
    assert not connector.verify_webhook(request({}), SECRET)


def test_githubs_published_example() -> None:
    # docs.github.com, "Validating webhook deliveries": this secret, payload "Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert hub_signature(SECRET, b"Hello, World!") == expected
    assert connector.verify_webhook(
        request({"X-Hub-Signature-256": expected}, b"Hello, World!"), SECRET
    )
