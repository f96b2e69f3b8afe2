"""Getting an access token for a connection: client credentials or a JWT bearer assertion.

Neither flow returns a refresh token or an expiry (``issued_at`` is all Salesforce says), so a
token is used until the API answers ``401 INVALID_SESSION_ID``; then the source asks for a new
one, once per request (see ``HttpClient``'s ``refresh_credentials`` hook).

Token requests go through their own :class:`HttpClient` on the login host, with an error table
in which a 400 or 401 is a :class:`CredentialsError`: the OAuth errors (``invalid_client``,
``invalid_grant``) mean the connection's credentials are wrong, not the metric's query. They do
not count against the org's API allocation, so they bypass the quota guard.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import httpx
import jwt

from connectors.salesforce.models import ClientCredentials, JwtBearer, SalesforceConnection
from okrsync.errors import CredentialsError, VendorResponseError
from okrsync.sdk.http import DEFAULT_ERROR_TABLE, ErrorAction, ErrorRule, HttpClient

TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 - a path, not a password
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

_REJECTED = ErrorRule(ErrorAction.FAIL, CredentialsError, "Salesforce refused to issue a token")
TOKEN_ERROR_TABLE: Mapping[int, ErrorRule] = MappingProxyType(
    {**DEFAULT_ERROR_TABLE, 400: _REJECTED, 401: _REJECTED, 403: _REJECTED}
)


@dataclass(frozen=True)
class Token:
    access_token: str
    instance_url: str


def describe_token_error(response: httpx.Response) -> str | None:
    """``{"error": "invalid_client", "error_description": "…"}`` → ``invalid_client: …``."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description = body.get("error_description")
        if isinstance(description, str) and description:
            return f"{body['error']}: {description}"
        return str(body["error"])
    return None


def jwt_assertion(auth: JwtBearer, login_url: str, now: float | None = None) -> str:
    """The RS256-signed assertion: iss = consumer key, sub = username, aud = login URL, exp."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": auth.client_id,
        "sub": auth.username,
        "aud": auth.audience or login_url,
        "exp": issued + auth.assertion_lifetime,
    }
    return jwt.encode(claims, auth.private_key.get_secret_value(), algorithm="RS256")


class TokenClient:
    """Asks the login host for access tokens on behalf of one connection."""

    def __init__(self, name: str, config: SalesforceConnection, http: HttpClient) -> None:
        self.name = name
        self.config = config
        self.http = http
        self.issued = 0  # tokens obtained, for tests and logs

    def form(self) -> dict[str, str]:
        auth = self.config.auth
        if isinstance(auth, ClientCredentials):
            return {
                "grant_type": "client_credentials",
                "client_id": auth.client_id,
                "client_secret": auth.client_secret.get_secret_value(),
            }
        return {"grant_type": JWT_GRANT, "assertion": jwt_assertion(auth, self.config.login_url)}

    async def fetch(self) -> Token:
        body = await self.http.request_json(
            "POST", TOKEN_PATH, data=self.form(), subject="token request"
        )
        token = body.get("access_token") if isinstance(body, dict) else None
        instance = body.get("instance_url") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or not isinstance(instance, str):
            raise VendorResponseError(
                "the token answer has no access_token or instance_url",
                connection=self.name,
                subject="token request",
            )
        self.http.add_secret(token)
        self.issued += 1
        return Token(token, instance.rstrip("/"))
