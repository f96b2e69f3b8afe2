"""Who is asking: the principal of an HTTP request, and what it may do.

A request's principal comes from, in this order:

1. a bearer token: ``OKRSYNC_API_TOKEN`` (every scope, as before tokens had scopes) or a token
   made with ``okrsync token create``, found by its SHA-256 (:mod:`okrsync.store.api_tokens`);
2. a trusted reverse proxy's ``X-Forwarded-Email`` / ``X-Forwarded-Groups`` (oauth2-proxy's
   headers), believed only when the connection comes from an address in
   ``OKRSYNC_TRUSTED_PROXIES``;
3. a signed-in session (OpenID Connect): ``request.session["user"]`` as
   ``{"email", "name", "groups"}``, when the application has sessions.

A token has the scopes it was made with. A signed-in person (proxy or session) may read and check
in (on the key results of objectives they own, :func:`may_check_in`), and is an admin when one
of their groups, or their e-mail, is in ``OKRSYNC_ADMIN_GROUPS``. Reads need the ``read`` scope
unless ``OKRSYNC_PUBLIC_READ=true`` opens them on purpose.

:func:`principal_of` may read the store (a token's lookup): the dependencies here call it in a
worker thread, once per request (the answer is kept on ``request.state``).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from okrsync.api.auth import CHALLENGE, bearer_token
from okrsync.api.context import ApiContext
from okrsync.api.errors import BadInput, context_of
from okrsync.api.offload import in_thread
from okrsync.settings import Settings
from okrsync.store import api_tokens

log = structlog.get_logger()

EMAIL_HEADER = "x-forwarded-email"
GROUPS_HEADER = "x-forwarded-groups"
ENV_TOKEN_SUBJECT = "OKRSYNC_API_TOKEN"  # noqa: S105 - the setting's name, not a token


class Scope(StrEnum):
    READ = "read"
    CHECK_IN = "check_in"
    ADMIN = "admin"


EVERY_SCOPE = frozenset(Scope)
PERSON_SCOPES = frozenset({Scope.READ, Scope.CHECK_IN})


@dataclass(frozen=True)
class Principal:
    """Who a request acts for. ``via``: ``token``, ``proxy``, ``oidc`` or ``public``."""

    subject: str
    scopes: frozenset[Scope]
    groups: frozenset[str] = frozenset()
    email: str | None = None
    via: str = "token"

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes

    @property
    def is_person(self) -> bool:
        return self.via in ("proxy", "oidc")


PUBLIC = Principal(subject="public", scopes=frozenset({Scope.READ}), via="public")


def listed(text: str) -> list[str]:
    """The items of a comma-separated setting or header, stripped, empty ones dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def from_trusted_proxy(peer: str | None, proxies: str) -> bool:
    """Whether a connection from ``peer`` comes from one of ``proxies`` (addresses, CIDRs)."""
    if peer is None or not proxies:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(p, strict=False) for p in listed(proxies))


def person(
    settings: Settings, email: str, groups: Iterable[str], via: str, name: str | None = None
) -> Principal:
    """A signed-in person: read and check in; admin when a group (or the e-mail) is an admin
    group."""
    held = frozenset(g for g in groups if g)
    admins = set(listed(settings.admin_groups))
    scopes = PERSON_SCOPES | ({Scope.ADMIN} if admins & (held | {email}) else set())
    return Principal(
        subject=name or email, scopes=frozenset(scopes), groups=held, email=email, via=via
    )


def _token_principal(ctx: ApiContext, token: str) -> Principal | None:
    expected = ctx.settings.api_token
    if (
        expected is not None
        and expected.get_secret_value()
        and hmac.compare_digest(token.encode(), expected.get_secret_value().encode())
    ):
        return Principal(subject=ENV_TOKEN_SUBJECT, scopes=EVERY_SCOPE)
    stored = api_tokens.token_by_secret(ctx.engine, token, ctx.clock())
    if stored is None:
        return None
    scopes = frozenset(Scope(s) for s in stored.scopes if s in Scope.__members__.values())
    return Principal(subject=f"token:{stored.name}", scopes=scopes)


def _proxy_principal(ctx: ApiContext, request: Request) -> Principal | None:
    email = request.headers.get(EMAIL_HEADER, "").strip()
    if not email:
        return None
    peer = request.client.host if request.client is not None else None
    if not from_trusted_proxy(peer, ctx.settings.trusted_proxies):
        return None
    groups = listed(",".join(request.headers.getlist(GROUPS_HEADER)))
    return person(ctx.settings, email, groups, "proxy")


def _session_principal(ctx: ApiContext, request: Request) -> Principal | None:
    if "session" not in request.scope:  # no SessionMiddleware: no OpenID Connect sign-in
        return None
    user: Any = request.session.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("email"), str) or not user["email"]:
        return None
    groups = user.get("groups") or []
    names = [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else []
    name = user.get("name") if isinstance(user.get("name"), str) else None
    return person(ctx.settings, user["email"], names, "oidc", name)


_UNKNOWN = object()


def principal_of(request: Request) -> Principal | None:
    """The principal ``request`` acts for, or None (may read the store: call it off the loop).

    A bearer token that is no token leaves the request to the proxy and the session, which
    sign people in on their own; a request with none of them has no principal.
    """
    known = getattr(request.state, "principal", _UNKNOWN)
    if known is not _UNKNOWN:
        assert known is None or isinstance(known, Principal)
        return known
    ctx = context_of(request)
    token = bearer_token(request)
    found = None if token is None else _token_principal(ctx, token)
    if found is None:
        found = _proxy_principal(ctx, request) or _session_principal(ctx, request)
    request.state.principal = found
    return found


def may_check_in(principal: Principal, owner: str | None) -> bool:
    """Whether ``principal`` may check in on a key result of an objective owned by ``owner``:
    a token with the ``check_in`` scope anywhere; a person with it on objectives they own (the
    owner is their e-mail or one of their groups); an admin anywhere."""
    if principal.has(Scope.ADMIN):
        return True
    if not principal.has(Scope.CHECK_IN):
        return False
    if not principal.is_person:
        return True
    return owner is not None and (owner == principal.email or owner in principal.groups)


def author_of(principal: Principal, environment_token: str) -> str:
    """Who a check-in by ``principal`` is recorded as: a person's e-mail, a stored token's
    ``token:<name>``, and ``environment_token`` for ``OKRSYNC_API_TOKEN`` (it has no name)."""
    if principal.email is not None:
        return principal.email
    return environment_token if principal.subject == ENV_TOKEN_SUBJECT else principal.subject


def sign_in_modes(settings: Settings, engine: Engine, *, sessions: bool = False) -> list[str]:
    """How anyone could sign in (a store read: call it off the loop): ``OKRSYNC_API_TOKEN``,
    ``tokens`` (live ones in the store), ``proxy`` (trusted proxies set), ``sessions`` (the
    application has sessions: OpenID Connect). None: writes are disabled (403), as before."""
    modes = []
    if settings.api_token is not None and settings.api_token.get_secret_value():
        modes.append(ENV_TOKEN_SUBJECT)
    if api_tokens.any_live_token(engine):
        modes.append("tokens")
    if listed(settings.trusted_proxies):
        modes.append("proxy")
    if sessions:
        modes.append("sessions")
    return modes


def loopback_only(host: str) -> bool:
    """Whether listening on ``host`` reaches this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name, or "" (every address)


def warn_when_exposed(settings: Settings, engine: Engine, host: str) -> bool:
    """Logs a warning, and says so, when the API listens beyond loopback with nothing to sign
    in with and reads not public on purpose: every read is then refused (401)."""
    if loopback_only(host) or settings.public_read or sign_in_modes(settings, engine):
        return False
    log.warning(
        "http_without_sign_in",
        host=host,
        detail="listening beyond loopback with no way to sign in: reads and writes are refused; "
        "create a token (okrsync token create), set OKRSYNC_TRUSTED_PROXIES for a signing-in "
        "proxy, or OKRSYNC_PUBLIC_READ=true to open reads on purpose",
    )
    return True


def _refusal(request: Request, principal: Principal | None, scope: Scope) -> BadInput | None:
    """Why ``principal`` may not act with ``scope`` (the exception to raise), or None."""
    if principal is not None:
        if principal.has(scope):
            return None
        return BadInput(403, "insufficient scope", f"this needs the {scope.value!r} scope")
    ctx, sessions = context_of(request), "session" in request.scope
    if scope is not Scope.READ and not sign_in_modes(ctx.settings, ctx.engine, sessions=sessions):
        return BadInput(
            403,
            "writes are disabled",
            "set OKRSYNC_API_TOKEN or create a token (okrsync token create) to enable writes",
        )
    if bearer_token(request) is not None:
        return BadInput(401, "invalid token", None, CHALLENGE)
    return BadInput(
        401, "authentication required", "send 'Authorization: Bearer <token>'", CHALLENGE
    )


def _checked(request: Request, scope: Scope) -> Principal:
    principal = principal_of(request)
    public = scope is Scope.READ and context_of(request).settings.public_read
    if public and (principal is None or not principal.has(Scope.READ)):
        return PUBLIC  # a token made for check-ins reads what anyone may
    refusal = _refusal(request, principal, scope)
    if refusal is not None:
        raise refusal
    assert principal is not None
    return principal


async def authorize(request: Request, scope: Scope) -> Principal:
    """The principal of ``request`` when it holds ``scope``; else raises the refusal: 401 (with
    ``WWW-Authenticate``) without a principal, 403 for one without the scope, 403 for a write
    when nothing could sign in."""
    return await in_thread(_checked, request, scope)


def require(scope: Scope) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the request's principal, which must hold ``scope``."""

    async def dependency(request: Request) -> Principal:
        return await authorize(request, scope)

    dependency.__name__ = f"require_{scope.value}"
    return dependency


async def dashboard_refusal(request: Request) -> Response | None:
    """None when ``request`` may see the dashboard (a principal with ``read``: a signed-in
    person, a token, or anyone under ``OKRSYNC_PUBLIC_READ``); else the answer to send.

    The one place the dashboard's pages are gated: OpenID Connect sign-in extends it to send a
    browser to the provider instead of the 401.
    """
    try:
        await authorize(request, Scope.READ)
    except BadInput as refused:
        return refused.response()
    return None


def gated(route: BaseRoute) -> BaseRoute:
    """``route`` (a dashboard page) answered only when :func:`dashboard_refusal` lets it."""
    if not isinstance(route, Route):
        return route
    endpoint = route.endpoint

    async def guarded(request: Request) -> Response:
        refusal = await dashboard_refusal(request)
        if refusal is not None:
            return refusal
        answer: Response = await endpoint(request)
        return answer

    methods = None if route.methods is None else sorted(route.methods)
    return Route(route.path, guarded, methods=methods, name=route.name)
