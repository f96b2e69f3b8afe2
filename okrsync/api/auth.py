"""The bearer token a request carries (``Authorization: Bearer <token>``) and the challenge a
401 answers with. Who the token is, and what it may do: :mod:`okrsync.api.principal`."""

from __future__ import annotations

from starlette.requests import Request

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="okrsync"'}


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
