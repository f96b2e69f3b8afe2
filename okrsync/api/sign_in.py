"""The dashboard's OpenID Connect sign-in put together: :class:`~okrsync.api.oidc.OidcSignIn`
with the dashboard's pages, its check-in form and who may use it.

:func:`oidc_sign_in` is None unless ``OKRSYNC_OIDC_ISSUER`` is set, so an application without
sign-in imports none of it (nor Authlib).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from okrsync.api.context import ApiContext
from okrsync.api.principal import may_check_in, person
from okrsync.settings import Settings

if TYPE_CHECKING:
    from okrsync.api.oidc import OidcSignIn, User


def check_in_rule(settings: Settings) -> Callable[[User, str | None], bool]:
    """Whether a signed-in person may check in on a key result of an objective owned by
    ``owner``: the principal's rule (:func:`okrsync.api.principal.may_check_in`), so the owner
    is their e-mail or one of their groups, or they are in ``OKRSYNC_ADMIN_GROUPS``."""

    def rule(user: User, owner: str | None) -> bool:
        someone = person(settings, user.email, user.groups, "oidc", user.name)
        return may_check_in(someone, owner)

    return rule


def oidc_sign_in(ctx: ApiContext) -> tuple[OidcSignIn, list[BaseRoute]] | None:
    """The sign-in and its routes (sign-in, callback, logout, the check-in form), or None when
    OpenID Connect is not configured; raises ``OidcSettingsError`` for a wrong setting."""
    if not (ctx.settings.oidc_issuer or "").strip():
        return None
    from okrsync.api.dashboard import message_page
    from okrsync.api.dashboard_check_in import check_in_routes
    from okrsync.api.oidc import OidcSignIn, oidc_config

    cfg = oidc_config(ctx.settings)
    assert cfg is not None
    for secret in (cfg.client_secret, cfg.session_secret):
        ctx.redactor.add([secret.get_secret_value()])

    def page(request: Request, status: int, heading: str, message: str) -> Response:
        return message_page(request, ctx.clock(), status, heading, message)

    sign_in = OidcSignIn(cfg, page, check_in_rule(ctx.settings), ctx.clock)
    return sign_in, [*sign_in.routes(), *check_in_routes(ctx, sign_in, page)]
