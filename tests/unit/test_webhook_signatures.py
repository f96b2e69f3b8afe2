"""okrsync's own webhook scheme and the WebSub form, as the SDK gives them to every connector."""

from __future__ import annotations

import hashlib
import hmac

import httpx

from connectors.webhook import connector as webhook_connector
from okrsync.sdk.connector import Connector
from okrsync.sdk.webhooks import (
    WebhookRequest,
    hub_signature,
    sign,
    verify,
    verify_hub_signature,
    verify_okrsync_webhook,
)

SECRET = "s3cret-value"
BODY = b'{"event":"key_result.updated"}'
SENT = 1_767_000_000


def request(headers: dict[str, str], now: float) -> WebhookRequest:
    return WebhookRequest(
        "POST", "https://okr.example.com/hooks/x", httpx.Headers(headers), BODY, now
    )


def test_the_okrsync_scheme_is_hmac_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{SENT}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, SENT, BODY) == f"sha256={expected}"
    assert sign(SECRET, str(SENT), BODY.decode()) == sign(SECRET, SENT, BODY)


def test_the_default_hook_accepts_what_the_webhook_mirror_signs_for_five_minutes() -> None:
    headers = {"X-Okrsync-Timestamp": str(SENT), "X-Okrsync-Signature": sign(SECRET, SENT, BODY)}
    assert verify_okrsync_webhook(request(headers, SENT + 10), SECRET)
    assert verify_okrsync_webhook(request(headers, SENT - 300), SECRET)
    assert not verify_okrsync_webhook(request(headers, SENT + 301), SECRET)  # replayed
    assert not verify_okrsync_webhook(request(headers, SENT), "other")
    assert not verify_okrsync_webhook(request({"X-Okrsync-Timestamp": str(SENT)}, SENT), SECRET)
    restamped = headers | {"X-Okrsync-Timestamp": str(SENT + 1)}
    assert not verify_okrsync_webhook(request(restamped, SENT), SECRET)
    assert not verify(SECRET, "²", BODY, headers["X-Okrsync-Signature"], now=SENT)


def test_a_connector_that_declares_no_hook_gets_the_default() -> None:
    assert webhook_connector.verify_webhook is verify_okrsync_webhook
    assert Connector.__dataclass_fields__["verify_webhook"].default is verify_okrsync_webhook


def test_the_websub_form() -> None:
    signed = hub_signature(SECRET, BODY)
    assert signed == "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert verify_hub_signature(SECRET, BODY, signed)
    assert verify_hub_signature(SECRET, BODY, " " + signed.upper().replace("SHA256=", "sha256="))
    assert not verify_hub_signature(SECRET, BODY + b" ", signed)
    assert not verify_hub_signature(SECRET, BODY, signed.replace("sha256", "sha1"))
    assert not verify_hub_signature(SECRET, BODY, None)
