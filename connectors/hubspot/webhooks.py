"""HubSpot's v3 webhook signature.

``X-HubSpot-Signature-v3: base64(HMAC-SHA256(secret, method + uri + body + timestamp))``, with
``X-HubSpot-Request-Timestamp`` in milliseconds; a timestamp more than five minutes from the
receiver's clock is refused (a captured request cannot be replayed later).
"""

from __future__ import annotations

import base64

from okrsync.sdk.webhooks import (
    DEFAULT_TOLERANCE,
    WebhookRequest,
    hmac_sha256,
    same_signature,
    timestamp_digits,
)

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"


def hubspot_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """The ``X-HubSpot-Signature-v3`` value of a request (``timestamp`` in milliseconds)."""
    message = method.upper().encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac_sha256(secret, message)).decode()


def verify_webhook(request: WebhookRequest, secret: str) -> bool:
    """The connector's ``verify_webhook`` hook: the v3 signature over the URL the request was
    sent to, within five minutes of ``received_at``."""
    signature = request.headers.get(SIGNATURE_HEADER)
    digits = timestamp_digits(request.headers.get(TIMESTAMP_HEADER))
    if signature is None or digits is None:
        return False
    if abs(request.received_at - int(digits) / 1000) > DEFAULT_TOLERANCE:
        return False
    expected = hubspot_signature(secret, request.method, request.url, request.body, digits)
    return same_signature(expected, signature)
