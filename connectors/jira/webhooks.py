"""Jira Cloud's webhook signature (admin webhooks with a secret), the WebSub form:
``X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>``."""

from __future__ import annotations

from okrsync.sdk.webhooks import WebhookRequest, verify_hub_signature

SIGNATURE_HEADER = "X-Hub-Signature"


def verify_webhook(request: WebhookRequest, secret: str) -> bool:
    """The connector's ``verify_webhook`` hook."""
    return verify_hub_signature(secret, request.body, request.headers.get(SIGNATURE_HEADER))
