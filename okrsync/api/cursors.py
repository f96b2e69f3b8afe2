"""Keyset page cursors: the opaque ``next_cursor`` a list gives and the sort key it carries back.

A cursor is the list's name and its last item's sort key, as URL-safe base64 of JSON
(datetimes as ISO text). It is not signed: a forged one only picks a start. One this list did
not give is refused with a 400 before anything is read.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

BAD_CURSOR = "cursor: not one this list gave (send back `next_cursor` unchanged)"
MAX_CURSOR = 1000
CURSOR_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR}
# sort-key parts a cursor may hold: JSON ints and strings; "when" is an ISO datetime string
Part = type[int] | type[str] | str


class BadCursor(ValueError):
    """A cursor this list did not give."""


def encode_cursor(kind: str, key: tuple[Any, ...]) -> str:
    """The opaque ``next_cursor`` of list ``kind`` whose page ended at sort key ``key``."""
    parts = [kind, *(v.isoformat() if isinstance(v, datetime) else v for v in key)]
    raw = json.dumps(parts, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def next_cursor(kind: str, key: tuple[Any, ...] | None) -> str | None:
    """The ``next_cursor`` of a page: None on the last page (no key)."""
    return None if key is None else encode_cursor(kind, key)


def decode_cursor(raw: str | None, kind: str, shape: tuple[Part, ...]) -> tuple[Any, ...] | None:
    """The sort key in ``raw``, checked against the list's ``shape``; :class:`BadCursor` for
    anything list ``kind`` did not give."""
    if raw is None:
        return None
    try:
        if len(raw) > MAX_CURSOR or not raw.isascii():
            raise ValueError
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(data, list) or len(data) != len(shape) + 1 or data[0] != kind:
            raise ValueError
        return tuple(_part(want, value) for want, value in zip(shape, data[1:], strict=True))
    except (ValueError, TypeError, binascii.Error, OverflowError, RecursionError):
        raise BadCursor(BAD_CURSOR) from None


def _part(want: Part, value: Any) -> Any:
    if want == "when":
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
        if when is None or when.tzinfo is None:
            raise ValueError
        return when.astimezone(UTC)  # OverflowError at the ends of time
    if type(value) is not want:  # bool is not an int here
        raise ValueError
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise ValueError  # no store column holds it
    if isinstance(value, str) and ("\x00" in value or not _encodable(value)):
        raise ValueError  # PostgreSQL text holds no NUL, nor a lone surrogate
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
