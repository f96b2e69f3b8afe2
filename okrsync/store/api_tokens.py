"""API tokens in the store: made, listed, revoked, and looked up by their hash.

A token is ``oks_`` and 32 random bytes (``secrets.token_urlsafe``), shown once when made. The
store keeps its SHA-256 and its first characters (``prefix``, to tell tokens apart in a list),
never the token. A fast unsalted hash is right here, unlike for passwords: 256 random bits cannot
be guessed or looked up in a table, so a slow hash would only slow every request down. A lookup
is by the hash (a unique index), so no comparison of secrets happens in Python at all.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from okrsync.errors import OkrsyncError
from okrsync.store.db import session_scope
from okrsync.store.tables import ApiTokenRow

TOKEN_PREFIX = "oks_"  # noqa: S105 - what every token starts with
TOKEN_BYTES = 32
SHOWN = len(TOKEN_PREFIX) + 6  # characters of a token kept and shown: ``oks_`` and six more
USED_EVERY = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per token: a read is not a write each time."""


def token_hash(token: str) -> str:
    """The SHA-256 of ``token``, in hex: what the store keeps and looks tokens up by."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True)
class StoredToken:
    """A token as the store knows it: everything but the token."""

    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiTokenRow) -> StoredToken:
        assert row.id is not None
        return cls(
            row.id,
            row.name,
            row.prefix,
            tuple(row.scopes),
            row.created_at,
            row.last_used_at,
            row.revoked_at,
        )


def create_token(
    engine: Engine, name: str, scopes: Iterable[str], now: datetime
) -> tuple[StoredToken, str]:
    """A new token named ``name`` with ``scopes``: its stored record and the token (to show
    once). A name in use, even by a revoked token, is refused: names identify tokens in logs."""
    token = new_token()
    row = ApiTokenRow(
        name=name,
        prefix=token[:SHOWN],
        token_sha256=token_hash(token),
        scopes=sorted(set(scopes)),
        created_at=now,
    )
    try:
        with session_scope(engine) as session:
            session.add(row)
            session.commit()
            session.refresh(row)
            stored = StoredToken.of(row)
    except IntegrityError:
        raise OkrsyncError(f"a token named {name!r} exists already") from None
    return stored, token


def list_tokens(engine: Engine) -> list[StoredToken]:
    with session_scope(engine) as session:
        rows = session.exec(select(ApiTokenRow).order_by(col(ApiTokenRow.id))).all()
        return [StoredToken.of(r) for r in rows]


def revoke_token(engine: Engine, which: str, now: datetime) -> StoredToken:
    """Revoke the token whose id or name is ``which``; a revoked one stays revoked (when first)."""
    with session_scope(engine) as session:
        query = select(ApiTokenRow).where(ApiTokenRow.name == which)
        if which.isascii() and which.isdigit():
            query = select(ApiTokenRow).where(
                or_(col(ApiTokenRow.id) == int(which), col(ApiTokenRow.name) == which)
            )
        rows = session.exec(query.order_by(col(ApiTokenRow.id))).all()
        if not rows:
            raise OkrsyncError(f"no token with id or name {which!r}")
        row = rows[0]
        if row.revoked_at is None:
            row.revoked_at = now
            session.add(row)
            session.commit()
            session.refresh(row)
        return StoredToken.of(row)


def token_by_secret(engine: Engine, token: str, now: datetime) -> StoredToken | None:
    """The live (unrevoked) token ``token`` is, or None; notes when it was used (coarsely)."""
    digest = token_hash(token)
    with session_scope(engine) as session:
        row = session.exec(
            select(ApiTokenRow).where(
                ApiTokenRow.token_sha256 == digest, col(ApiTokenRow.revoked_at).is_(None)
            )
        ).first()
        if row is None:
            return None
        stored = StoredToken.of(row)
        if row.last_used_at is None or now - row.last_used_at >= USED_EVERY:
            session.execute(
                update(ApiTokenRow).where(col(ApiTokenRow.id) == row.id).values(last_used_at=now)
            )
            session.commit()
        return stored


def any_live_token(engine: Engine) -> bool:
    with session_scope(engine) as session:
        live = select(ApiTokenRow.id).where(col(ApiTokenRow.revoked_at).is_(None)).limit(1)
        return session.exec(live).first() is not None
