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

FIELD = "csrf"
SESSION_KEY = "csrf"


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
