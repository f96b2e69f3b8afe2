"""Cross-site request forgery protection for the dashboard's forms.

Each signed-in session holds one random token (:func:`session_token`), written into every form
as a hidden ``csrf`` field; a POST is accepted only when the field equals the session's token
(:func:`check`, compared in constant time). Another site can make a browser send the session
cookie (the cookie is also ``SameSite=Lax``, which stops most such POSTs), but cannot read the
token out of our pages, so it cannot send the field.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request

from okrsync.api.bodies import read_body

FIELD = "csrf"
SESSION_KEY = "csrf"
FORM_LIMIT = 16 * 1024  # bytes: a check-in's note (2,000 characters) escaped, and the rest
MAX_FIELDS = 20


def session_token(session: MutableMapping[str, Any]) -> str:
    """The session's token, made on first use."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def valid(session: MutableMapping[str, Any], given: object) -> bool:
    """Whether ``given`` (a form field's value) is the session's token."""
    expected = session.get(SESSION_KEY)
    if not isinstance(expected, str) or not expected or not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a dashboard form's POST, the first value of each; none for another kind of
    body (or a broken one), so its token is missing. A body over :data:`FORM_LIMIT` is a 413."""
    raw = await read_body(request, FORM_LIMIT)
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    try:
        fields = parse_qs(
            raw.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in fields.items()}
