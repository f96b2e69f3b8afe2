"""Service-account authentication for the GA4 Data API (OAuth 2.0 JWT bearer grant).

The key file a Google Cloud admin downloads holds ``client_email``, ``private_key`` (PEM),
``private_key_id`` and ``token_uri``. To get an access token we sign a short JWT with that key
(RS256, ``exp`` at most one hour after ``iat``, as Google requires), post it to ``token_uri``,
and keep the token until shortly before it expires: one token request per hour per connection,
not per report. A 401 from the API (a token revoked or expired early) forces one refresh.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from okrsync.errors import CredentialsError, VendorResponseError
from okrsync.sdk.http import DEFAULT_ERROR_TABLE, ErrorAction, ErrorRule, HttpClient, RetryPolicy

SCOPE = "https://www.googleapis.com/auth/analytics.readonly"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
ASSERTION_LIFETIME = 3600  # Google's maximum
REFRESH_MARGIN = 120.0  # renew this long before the token expires

TOKEN_ERROR_TABLE = {
    **DEFAULT_ERROR_TABLE,
    400: ErrorRule(ErrorAction.FAIL, CredentialsError, "Google refused the service-account key"),
    401: ErrorRule(ErrorAction.FAIL, CredentialsError, "Google refused the service-account key"),
}


@dataclass(frozen=True)
class ServiceAccountKey:
    client_email: str
    private_key: str
    private_key_id: str | None
    token_uri: str

    @classmethod
    def parse(cls, text: str, *, connection: str, where: str) -> ServiceAccountKey:
        def bad(problem: str) -> CredentialsError:
            return CredentialsError(
                f"{where} is not a service-account key: {problem}", connection=connection
            )

        try:
            data: Any = json.loads(text)
        except ValueError:
            raise bad("not JSON") from None
        if not isinstance(data, dict):
            raise bad("not a JSON object")
        if data.get("type", "service_account") != "service_account":
            raise bad(f"its type is {data.get('type')!r}, not 'service_account'")
        missing = [k for k in ("client_email", "private_key") if not isinstance(data.get(k), str)]
        if missing:
            raise bad(f"{', '.join(missing)} missing")
        token_uri = data.get("token_uri") or DEFAULT_TOKEN_URI
        if not isinstance(token_uri, str):
            raise bad("token_uri is not a string")
        key_id = data.get("private_key_id")
        return cls(
            client_email=data["client_email"],
            private_key=data["private_key"],
            private_key_id=key_id if isinstance(key_id, str) else None,
            token_uri=token_uri,
        )


def load_key(
    connection: str, credentials_json: str | None, credentials_file: str | None
) -> ServiceAccountKey:
    if credentials_json is not None:
        return ServiceAccountKey.parse(
            credentials_json, connection=connection, where="credentials_json"
        )
    assert credentials_file is not None
    try:
        text = Path(credentials_file).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise CredentialsError(
            f"cannot read credentials_file {credentials_file}: {exc.strerror}",
            connection=connection,
        ) from None
    return ServiceAccountKey.parse(
        text, connection=connection, where=f"credentials_file {credentials_file}"
    )


class TokenProvider:
    """Signs assertions, exchanges them for access tokens and caches the token."""

    def __init__(
        self,
        connection: str,
        key: ServiceAccountKey,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connection = connection
        self.key = key
        self.clock = clock
        self._client = HttpClient(
            connection=connection,
            base_url=key.token_uri,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            error_table=TOKEN_ERROR_TABLE,
            secrets=[key.private_key],
        )
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.token_requests = 0

    @property
    def calls(self) -> int:
        return self._client.calls

    async def aclose(self) -> None:
        await self._client.aclose()

    def assertion(self) -> str:
        """A signed JWT. Its times come from the real wall clock, which Google checks, while
        token expiry is tracked with ``clock`` (injectable, so tests can age a token)."""
        now = time.time()
        claims = {
            "iss": self.key.client_email,
            "scope": SCOPE,
            "aud": self.key.token_uri,
            "iat": int(now),
            "exp": int(now) + ASSERTION_LIFETIME,
        }
        headers = {"kid": self.key.private_key_id} if self.key.private_key_id else None
        try:
            return jwt.encode(claims, self.key.private_key, algorithm="RS256", headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise CredentialsError(
                f"the private_key of the service account {self.key.client_email} cannot sign "
                f"({type(exc).__name__}); is it the PEM key from the JSON file?",
                connection=self.connection,
            ) from None

    async def token(self, *, force: bool = False, stale: str | None = None) -> str:
        """A valid access token; a new one when forced (after a 401) or close to expiry.

        ``stale`` is the token a caller saw rejected: when another request already replaced it,
        that newer token is returned instead of asking Google again.
        """
        async with self._lock:
            now = self.clock()
            fresh = self._token is not None and now < self._expires_at - REFRESH_MARGIN
            if fresh and not (force and self._token == stale):
                assert self._token is not None
                return self._token
            return await self._exchange(now)

    async def _exchange(self, now: float) -> str:
        self.token_requests += 1
        body = await self._client.request_json(
            "POST",
            self.key.token_uri,
            data={"grant_type": GRANT_TYPE, "assertion": self.assertion()},
            subject=f"token for {self.key.client_email}",
        )
        token = body.get("access_token") if isinstance(body, dict) else None
        expires_in = body.get("expires_in", 3600) if isinstance(body, dict) else None
        if not isinstance(token, str) or not isinstance(expires_in, int | float):
            raise VendorResponseError(
                "the token endpoint answered without access_token/expires_in",
                connection=self.connection,
            )
        self._client.add_secret(token)
        self._token = token
        self._expires_at = now + float(expires_in)
        return token
