"""Checking who sent an inbound webhook: each vendor's signature scheme, constant-time compared.

* GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``.
* Jira Cloud (admin webhooks with a secret): the WebSub form, ``X-Hub-Signature:
  sha256=<hex HMAC-SHA256(secret, body)>``.
* HubSpot v3: ``X-HubSpot-Signature-v3: base64(HMAC-SHA256(secret, method + uri + body +
  timestamp))`` with ``X-HubSpot-Request-Timestamp`` (milliseconds) at most five minutes old.
* anything else: okrsync's own scheme (the one the ``webhook`` mirror signs with),
  ``X-Okrsync-Signature: sha256=<hex HMAC-SHA256(secret, "<ts>." + body)>`` with
  ``X-Okrsync-Timestamp`` (seconds) at most five minutes from now.

Every check takes the clock as an argument: the replay window is tested exactly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

TOLERANCE = 300.0  # seconds a timestamped signature stays acceptable, either way (clock skew)


def _hmac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.strip().encode())


def hub_signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: the value GitHub and Jira send for ``body``."""
    return "sha256=" + _hmac(secret, body).hex()


def verify_hub(secret: str, body: bytes, header: str | None) -> bool:
    if header is None or not header.strip().lower().startswith("sha256="):
        return False
    return _same(hub_signature(secret, body), header.strip().lower())


def hubspot_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(_hmac(secret, message)).decode()


def verify_hubspot(
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float,
) -> bool:
    signature = headers.get("x-hubspot-signature-v3")
    timestamp = headers.get("x-hubspot-request-timestamp")
    if signature is None or timestamp is None:
        return False
    text = timestamp.strip()
    if not (text.isascii() and text.isdigit()) or abs(now - int(text) / 1000) > TOLERANCE:
        return False
    return _same(hubspot_signature(secret, method, uri, body, text), signature)


def okrsync_signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + _hmac(secret, timestamp.encode() + b"." + body).hex()


def verify_okrsync(secret: str, body: bytes, headers: Mapping[str, str], *, now: float) -> bool:
    signature = headers.get("x-okrsync-signature")
    timestamp = headers.get("x-okrsync-timestamp")
    if signature is None or timestamp is None:
        return False
    text = timestamp.strip()
    if not (text.isascii() and text.isdigit()) or abs(now - int(text)) > TOLERANCE:
        return False
    return _same(okrsync_signature(secret, text, body), signature)
