"""GitHub's webhook signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``."""

from __future__ import annotations

from okrsync.sdk.webhooks import WebhookRequest, verify_hub_signature

SIGNATURE_HEADER = "X-Hub-Signature-256"


def verify_webhook(request: WebhookRequest, secret: str) -> bool:
    """The connector's ``verify_webhook`` hook (the SHA-1 ``X-Hub-Signature`` is not accepted)."""
    return verify_hub_signature(secret, request.body, request.headers.get(SIGNATURE_HEADER))
