"""How the GA4 fake checks a service account's credentials, as Google documents them.

Two ways in, both signed RS256 with the service account's private key and verified here with
the public key registered for the ``iss`` (its ``client_email``):

* the OAuth 2.0 token exchange (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``):
  the assertion's ``aud`` is Google's token endpoint, ``https://oauth2.googleapis.com/token``
  (what Google's own client sends), or the URL the assertion was posted to (the ``token_uri`` of
  a key file pointing at this fake); ``scope`` names an Analytics scope; ``exp - iat`` at most
  one hour.
* a self-signed JWT sent directly as the bearer token ("service account authorization without
  OAuth", AIP-4111), which ``google-auth`` sends by default for service accounts: ``iss`` and
  ``sub`` the client email, ``iat``/``exp`` at most an hour apart, and either ``aud`` the API's
  endpoint (``https://analyticsdata.googleapis.com/``, or this fake's own base URL) or a
  ``scope`` claim with an Analytics scope, never both.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
API_AUDIENCE = "https://analyticsdata.googleapis.com/"
SCOPES = (
    "https://www.googleapis.com/auth/analytics.readonly",
    "https://www.googleapis.com/auth/analytics",
)
MAX_LIFETIME = 3600  # seconds between iat and exp, Google's maximum
LEEWAY = 60  # clock skew tolerated on iat/exp


@dataclass(frozen=True)
class Refusal:
    """Why a credential was refused, in Google's words."""

    error: str
    description: str


def has_analytics_scope(scope: Any) -> bool:
    return isinstance(scope, str) and any(s in SCOPES for s in scope.split())


def _unverified(token: str) -> dict[str, Any] | None:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None


def _too_long(claims: Mapping[str, Any]) -> bool:
    try:
        return int(claims.get("exp", 0)) - int(claims.get("iat", 0)) > MAX_LIFETIME
    except (TypeError, ValueError):
        return True


def check_grant_assertion(
    assertion: str, public_keys: Mapping[str, Any], token_url: str
) -> tuple[str, None] | tuple[None, Refusal]:
    """The token exchange's assertion: the client email it names, or why it is refused."""
    claims = _unverified(assertion)
    if claims is None:
        return None, Refusal(
            "invalid_request",
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe",
        )
    email = str(claims.get("iss", ""))
    public = public_keys.get(email)
    if public is None:
        return None, Refusal("invalid_grant", "Invalid grant: account not found")
    try:
        jwt.decode(
            assertion,
            public,
            algorithms=["RS256"],
            audience=[GOOGLE_TOKEN_URI, token_url],
            leeway=LEEWAY,
            options={"require": ["iss", "aud", "iat", "exp"]},
        )
    except jwt.InvalidSignatureError:
        return None, Refusal("invalid_grant", "Invalid JWT Signature.")
    except jwt.PyJWTError as exc:
        return None, Refusal("invalid_grant", f"Invalid JWT: {exc}")
    if not has_analytics_scope(claims.get("scope")):
        return None, Refusal("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    if _too_long(claims):
        return None, Refusal(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
            "timeframe. Check your iat and exp values in the JWT claim.",
        )
    return email, None


def self_signed_caller(
    token: str, public_keys: Mapping[str, Any], own_audiences: Collection[str]
) -> str | None:
    """The client email of a valid self-signed JWT access token, else ``None`` (a 401)."""
    claims = _unverified(token)
    if claims is None:
        return None
    email = claims.get("iss")
    public = public_keys.get(email) if isinstance(email, str) else None
    if public is None or claims.get("sub") != email or _too_long(claims):
        return None
    has_aud, has_scope = "aud" in claims, "scope" in claims
    if has_aud == has_scope:  # exactly one of them (AIP-4111)
        return None
    audiences = [API_AUDIENCE, API_AUDIENCE.rstrip("/"), *own_audiences]
    try:
        jwt.decode(
            token,
            public,
            algorithms=["RS256"],
            audience=audiences if has_aud else None,
            leeway=LEEWAY,
            options={"require": ["iss", "sub", "iat", "exp"], "verify_aud": has_aud},
        )
    except jwt.PyJWTError:
        return None
    if has_scope and not has_analytics_scope(claims.get("scope")):
        return None
    return email if isinstance(email, str) else None
