"""Linear's webhook signature: ``Linear-Signature`` is the hex HMAC-SHA256 of the raw body,
keyed with the webhook's signing secret; the body's ``webhookTimestamp`` (Unix milliseconds)
says when Linear sent it, and a delivery more than a minute from our clock is refused, so a
captured one cannot be replayed later (the timestamp is inside the signed body)."""

from __future__ import annotations

import json

from okrsync.sdk.webhooks import WebhookRequest, hmac_sha256, same_signature

SIGNATURE_HEADER = "Linear-Signature"
MAX_AGE = 60.0  # seconds, as Linear's documentation recommends


def linear_signature(secret: str, body: bytes) -> str:
    """The ``Linear-Signature`` value Linear sends with ``body``."""
    return hmac_sha256(secret, body).hex()


def verify_webhook(request: WebhookRequest, secret: str, *, max_age: float = MAX_AGE) -> bool:
    """The connector's ``verify_webhook`` hook: the signature first, then the timestamp."""
    header = request.headers.get(SIGNATURE_HEADER)
    if not header or not same_signature(linear_signature(secret, request.body), header.lower()):
        return False
    try:
        body = json.loads(request.body)
    except ValueError:
        return False
    stamp = body.get("webhookTimestamp") if isinstance(body, dict) else None
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        return False
    return abs(request.received_at - stamp / 1000.0) <= max_age
