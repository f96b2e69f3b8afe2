"""Who is looking at a dashboard page, as the page needs it: a name to show, a logout button, the
form token, and whether the check-in forms are theirs to use.

Built per request by the sign-in that knows the person (:mod:`okrsync.api.oidc`) and handed to
the pages; without sign-in the pages get none and show neither the person nor any form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request


@dataclass(frozen=True)
class Viewer:
    """A signed-in person; or, with ``email`` empty, someone who may read without signing in
    (``OKRSYNC_PUBLIC_READ``), offered ``login`` and no form."""

    name: str
    email: str
    csrf: str  # the session's form token (okrsync.api.csrf), written into every form
    logout: str  # the path the logout button posts to
    may_check_in: Callable[[str | None], bool]  # by the key result's objective's owner
    form_action: tuple[str, ...] = ()  # origins forms may lead to besides ours (the provider's)
    flash: str | None = None  # what the last form did, shown once
    flash_failed: bool = False  # the last form was refused (``flash`` says why)
    login: str = ""  # where to sign in, coming back to this page


ViewerOf = Callable[[Request], Viewer | None]
