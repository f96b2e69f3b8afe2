"""Who may write: reads are open, every write carries ``Authorization: Bearer <token>``.

The token is ``OKRSYNC_API_TOKEN``. Without one configured, writes are refused outright (403):
an open write endpoint by omission would be worse than a disabled one. Tokens are compared with
:func:`hmac.compare_digest`, so the time a check takes says nothing about how much was right.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.requests import Request

from okrsync.api.bodies import BadBody

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="okrsync"'}


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def check_write(request: Request, expected: SecretStr | None) -> None:
    """Nothing when ``request`` may write; else raises the refusal (:class:`BadBody`, answered
    ``{error, detail}``): 403 without a token configured, 401 without the right one."""
    if expected is None or not expected.get_secret_value():
        raise BadBody(
            403,
            "writes are disabled",
            "set OKRSYNC_API_TOKEN to enable writes through the API",
        )
    given = bearer_token(request)
    if given is None:
        raise BadBody(
            401, "authentication required", "send 'Authorization: Bearer <token>'", CHALLENGE
        )
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise BadBody(401, "invalid token", None, CHALLENGE)
