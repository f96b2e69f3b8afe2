"""Signing webhook deliveries, so a receiver can tell okrsync's posts from anyone else's.

The scheme (the same shape as Stripe's and Slack's, so receivers know it):

* ``X-Okrsync-Timestamp``: the Unix time of sending, in whole seconds;
* ``X-Okrsync-Signature``: ``sha256=`` followed by the lowercase hex HMAC-SHA256, keyed with
  the shared secret (UTF-8), of the bytes ``f"{timestamp}.".encode() + body`` — the body
  exactly as sent, before any JSON parsing.

The timestamp is inside the signed bytes so a captured delivery cannot be replayed later with a
fresh timestamp; a receiver rejects timestamps more than ``tolerance`` seconds from its own
clock (five minutes by default, as skewed clocks are common). A retried delivery is re-signed
with a new timestamp and keeps its ``Idempotency-Key``, which is what de-duplicates it.

Comparison uses :func:`hmac.compare_digest`, so how long a check takes says nothing about how
much of a forged signature was right.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Okrsync-Signature"
TIMESTAMP_HEADER = "X-Okrsync-Timestamp"
SCHEME = "sha256"
DEFAULT_TOLERANCE = 300.0


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign(secret: str, timestamp: int | str, body: str | bytes) -> str:
    """The ``X-Okrsync-Signature`` value for ``body`` sent at ``timestamp``."""
    message = f"{timestamp}.".encode() + _bytes(body)
    mac = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SCHEME}={mac}"


def verify(
    secret: str,
    timestamp: int | str | None,
    body: str | bytes,
    signature: str | None,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """Whether ``signature`` is ours for ``body`` at ``timestamp``, and that is recent enough.

    ``now`` is passed in (no hidden clock) so the replay window is tested exactly. A missing or
    malformed header is simply ``False``: the receiver answers 401 either way.
    """
    if timestamp is None or signature is None:
        return False
    text = str(timestamp).strip()
    if not (text.isascii() and text.isdigit()):
        return False
    if abs(now - int(text)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, text, body).encode(), signature.strip().encode())
