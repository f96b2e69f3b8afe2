"""The two generic HTTP credentials many APIs take, as config models and as headers."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class BearerAuth(BaseModel):
    """``Authorization: Bearer <token>`` on every request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["bearer"]
    token: SecretStr


class BasicAuth(BaseModel):
    """HTTP basic authentication."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["basic"]
    username: str
    password: SecretStr


HttpAuth = Annotated[BearerAuth | BasicAuth, Field(discriminator="type")]


@dataclass(frozen=True)
class AuthHeaders:
    """The headers to send, and the secrets they carry (in the form they travel in)."""

    headers: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)


def auth_headers(auth: BearerAuth | BasicAuth | None) -> AuthHeaders:
    if isinstance(auth, BearerAuth):
        token = auth.token.get_secret_value()
        return AuthHeaders({"Authorization": f"Bearer {token}"}, [token])
    if isinstance(auth, BasicAuth):
        password = auth.password.get_secret_value()
        pair = base64.b64encode(f"{auth.username}:{password}".encode()).decode()
        return AuthHeaders({"Authorization": f"Basic {pair}"}, [password, pair])
    return AuthHeaders()
