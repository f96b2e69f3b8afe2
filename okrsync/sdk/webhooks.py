"""Signed webhooks: okrsync's own signature scheme, and the hook that verifies inbound ones.

okrsync's scheme (the same shape as Stripe's and Slack's, so receivers know it) is what the
``webhook`` mirror signs its deliveries with and what ``POST /hooks/{connection}`` accepts from a
connection whose connector declares no scheme of its own:

* ``X-Okrsync-Timestamp``: the Unix time of sending, in whole seconds;
* ``X-Okrsync-Signature``: ``sha256=`` followed by the lowercase hex HMAC-SHA256, keyed with
  the shared secret (UTF-8), of the bytes ``f"{timestamp}.".encode() + body`` — the body
  exactly as sent, before any JSON parsing.

The timestamp is inside the signed bytes so a captured delivery cannot be replayed later with a
fresh timestamp; a receiver rejects timestamps more than ``tolerance`` seconds from its own
clock (five minutes by default, as skewed clocks are common).

A connector whose vendor signs its webhooks another way gives its :class:`~okrsync.sdk.connector.
Connector` a ``verify_webhook``: a :class:`WebhookVerifier`, called with the
:class:`WebhookRequest` and the connection's secret. :func:`verify_hub_signature` checks the
WebSub form (``sha256=<hex HMAC-SHA256(secret, body)>``) that several vendors send under their
own header name.

Every comparison uses :func:`hmac.compare_digest`, so how long a check takes says nothing about
how much of a forged signature was right; every check takes the clock as an argument (no hidden
clock), so the replay window is tested exactly.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Protocol

import httpx

SIGNATURE_HEADER = "X-Okrsync-Signature"
TIMESTAMP_HEADER = "X-Okrsync-Timestamp"
SCHEME = "sha256"
DEFAULT_TOLERANCE = 300.0  # seconds a timestamped signature stays acceptable, either way


@dataclass(frozen=True)
class WebhookRequest:
    """One inbound webhook as a verifier sees it.

    ``url`` is the URL the request was sent to, as the server saw it (scheme, host, path and
    query); ``headers`` are looked up case-insensitively; ``body`` is the raw bytes, before any
    parsing; ``received_at`` is the wall clock at receipt, in Unix seconds.
    """

    method: str
    url: str
    headers: httpx.Headers
    body: bytes
    received_at: float


class WebhookVerifier(Protocol):
    """Whether ``request`` was signed with ``secret``. A verifier answers ``False`` for anything
    missing or malformed; an exception it raises is taken as a refusal too."""

    def __call__(self, request: WebhookRequest, secret: str) -> bool: ...


def hmac_sha256(secret: str, message: bytes) -> bytes:
    """The HMAC-SHA256 digest of ``message`` keyed with ``secret`` (UTF-8)."""
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def same_signature(expected: str, given: str) -> bool:
    """Constant-time comparison of a computed signature with the one a request carried."""
    return hmac.compare_digest(expected.encode(), given.strip().encode())


def timestamp_digits(value: int | str | None) -> str | None:
    """A timestamp header's digits (spaces around them dropped), or ``None`` when it is missing
    or not digits only."""
    if value is None:
        return None
    text = str(value).strip()
    return text if text.isascii() and text.isdigit() else None


# --- okrsync's own scheme -----------------------------------------------------------------------


def sign(secret: str, timestamp: int | str, body: str | bytes) -> str:
    """The ``X-Okrsync-Signature`` value for ``body`` sent at ``timestamp``."""
    payload = body.encode() if isinstance(body, str) else body
    return f"{SCHEME}=" + hmac_sha256(secret, f"{timestamp}.".encode() + payload).hex()


def verify(
    secret: str,
    timestamp: int | str | None,
    body: str | bytes,
    signature: str | None,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """Whether ``signature`` is okrsync's for ``body`` at ``timestamp``, and that is recent enough.

    A missing or malformed header is simply ``False``: a receiver answers 401 either way.
    """
    if signature is None:
        return False
    digits = timestamp_digits(timestamp)
    if digits is None or abs(now - int(digits)) > tolerance:
        return False
    return same_signature(sign(secret, digits, body), signature)


def verify_okrsync_webhook(request: WebhookRequest, secret: str) -> bool:
    """The default :class:`WebhookVerifier`: okrsync's own scheme."""
    return verify(
        secret,
        request.headers.get(TIMESTAMP_HEADER),
        request.body,
        request.headers.get(SIGNATURE_HEADER),
        now=request.received_at,
    )


# --- the WebSub form ----------------------------------------------------------------------------


def hub_signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, body)>``, the WebSub form of a body's signature."""
    return "sha256=" + hmac_sha256(secret, body).hex()


def verify_hub_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (the value of the vendor's signature header) is ``body``'s WebSub
    signature; the algorithm name and the hex digits may come in either case."""
    if header is None or not header.strip().lower().startswith("sha256="):
        return False
    return same_signature(hub_signature(secret, body), header.strip().lower())
