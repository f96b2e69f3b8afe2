"""OpenID Connect sign-in for the dashboard, with Authlib as the client.

On when ``OKRSYNC_OIDC_ISSUER`` is set (:func:`oidc_config` says what else it needs). Then every
dashboard page sends a browser that has not signed in to ``/login``, which sends it on to the
provider (authorization code flow with ``state``, ``nonce`` and PKCE S256, all kept in the
session). The provider sends it back to ``/auth/callback``: the code is exchanged, the ID token's
signature, issuer, audience, expiry and nonce are checked by Authlib, and the person is let in
only when :func:`admit` says so (allowed e-mail domains and/or a required group); anyone else
gets a 403 page saying why. ``/logout`` (a form: POST with the CSRF token) clears the session
and, when the provider advertises an ``end_session_endpoint``, signs out there too (RP-initiated
logout), coming back to ``/signed-out``.

The session is Starlette's signed cookie (``okrsync_session``): HttpOnly, ``SameSite=Lax``,
``Secure`` when the dashboard's address is https, and it expires after
:data:`SESSION_MAX_AGE`. It holds the person as ``{"email", "name", "groups"}``, the form token
(:mod:`okrsync.api.csrf`) and, during a sign-in, Authlib's state; never a provider's token.
"""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import structlog
from pydantic import SecretStr
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from okrsync.api import csrf
from okrsync.api.auth import bearer_token
from okrsync.api.principal import dashboard_refusal
from okrsync.api.viewer import Viewer
from okrsync.errors import SettingsError
from okrsync.settings import Settings

with warnings.catch_warnings():  # Authlib 1.9 warns on import: it prefers httpx2 and joserfc
    import authlib.deprecate  # its import makes its warnings "always": ignore them after it

    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.starlette_client import OAuth, OAuthError
    from authlib.jose.errors import JoseError
    from joserfc.errors import JoseError as JoserfcError

log = structlog.get_logger()

LOGIN_PATH = "/login"
CALLBACK_PATH = "/auth/callback"
LOGOUT_PATH = "/logout"
SIGNED_OUT_PATH = "/signed-out"
SESSION_COOKIE = "okrsync_session"
SESSION_MAX_AGE = 12 * 3600
"""Seconds a sign-in lasts: a working day; then the provider is asked again (usually silently)."""
MAX_GROUPS = 100
"""Groups kept in the session (the cookie must stay under 4 kB); the first ones the provider
lists, after those named by ``OKRSYNC_OIDC_REQUIRED_GROUPS``."""
MIN_SESSION_SECRET = 32


class OidcSettingsError(SettingsError):
    """An OpenID Connect setting is missing or wrong; the message names the setting (one line,
    exit 2, as every bad setting)."""


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    metadata_url: str
    client_id: str
    client_secret: SecretStr
    base_url: str  # without a trailing slash
    allowed_domains: frozenset[str]
    required_groups: frozenset[str]
    groups_claim: str
    scopes: str
    session_secret: SecretStr

    @property
    def redirect_uri(self) -> str:
        return self.base_url + CALLBACK_PATH

    @property
    def signed_out_uri(self) -> str:
        return self.base_url + SIGNED_OUT_PATH

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")


def _listed(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(name: str, value: str) -> str:
    """``value`` when it is an http(s) address without query or fragment (https unless it is
    this machine's); else the error naming ``name``."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OidcSettingsError(f"{name}: {value!r} is not an http(s) address")
    if parts.query or parts.fragment:
        raise OidcSettingsError(f"{name}: {value!r} must not have a query or fragment")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise OidcSettingsError(f"{name}: {value!r} must be https (http only for this machine)")
    return value.rstrip("/")


def oidc_config(settings: Settings) -> OidcConfig | None:
    """The sign-in settings, or None when ``OKRSYNC_OIDC_ISSUER`` is not set; raises
    :class:`OidcSettingsError` naming the first setting that is missing or wrong."""
    if not (settings.oidc_issuer or "").strip():
        return None
    discovery = _url("OKRSYNC_OIDC_ISSUER", (settings.oidc_issuer or "").strip())
    suffix = "/.well-known/openid-configuration"
    issuer = discovery.removesuffix(suffix)
    for name, value in (
        ("OKRSYNC_OIDC_CLIENT_ID", settings.oidc_client_id),
        ("OKRSYNC_OIDC_CLIENT_SECRET", settings.oidc_client_secret),
        ("OKRSYNC_OIDC_BASE_URL", settings.oidc_base_url),
        ("OKRSYNC_SESSION_SECRET", settings.session_secret),
    ):
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not (text or "").strip():
            raise OidcSettingsError(f"{name} is required when OKRSYNC_OIDC_ISSUER is set")
    assert settings.session_secret is not None and settings.oidc_client_secret is not None
    if len(settings.session_secret.get_secret_value()) < MIN_SESSION_SECRET:
        raise OidcSettingsError(
            f"OKRSYNC_SESSION_SECRET must be at least {MIN_SESSION_SECRET} characters "
            "(e.g. the output of: openssl rand -hex 32)"
        )
    domains = frozenset(d.lower().lstrip("@") for d in _listed(settings.oidc_allowed_domains))
    groups = frozenset(_listed(settings.oidc_required_groups))
    if not domains and not groups:
        raise OidcSettingsError(
            "set OKRSYNC_OIDC_ALLOWED_DOMAINS and/or OKRSYNC_OIDC_REQUIRED_GROUPS: without "
            "either, anyone with an account at the provider could sign in"
        )
    scopes = settings.oidc_scopes.split()
    if "openid" not in scopes:
        raise OidcSettingsError("OKRSYNC_OIDC_SCOPES must include 'openid'")
    if not settings.oidc_groups_claim.strip():
        raise OidcSettingsError("OKRSYNC_OIDC_GROUPS_CLAIM must name a claim")
    return OidcConfig(
        issuer=issuer,
        metadata_url=issuer + suffix,
        client_id=(settings.oidc_client_id or "").strip(),
        client_secret=settings.oidc_client_secret,
        base_url=_url("OKRSYNC_OIDC_BASE_URL", (settings.oidc_base_url or "").strip()),
        allowed_domains=domains,
        required_groups=groups,
        groups_claim=settings.oidc_groups_claim.strip(),
        scopes=" ".join(scopes),
        session_secret=settings.session_secret,
    )


# --------------------------------------------------------------------------- who may come in


@dataclass(frozen=True)
class User:
    email: str
    name: str
    groups: tuple[str, ...]

    def as_session(self) -> dict[str, Any]:
        return {"email": self.email, "name": self.name, "groups": list(self.groups)}


@dataclass(frozen=True)
class Refused:
    """Why a person who signed in at the provider may not use the dashboard (shown to them)."""

    reason: str


def groups_of(claim: object) -> list[str]:
    """A groups claim as a list: providers send a list of names (or ids); a lone string is one
    group."""
    if isinstance(claim, str):
        return [claim] if claim else []
    if isinstance(claim, list | tuple):
        return [g for g in claim if isinstance(g, str) and g]
    return []


def admit(claims: Mapping[str, Any], cfg: OidcConfig) -> User | Refused:
    """The person the (verified) claims describe, when they may use the dashboard: a verified
    e-mail address, in an allowed domain when domains are set, in one of the required groups
    when groups are set (both, when both are set)."""
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email.strip("@"):
        return Refused(
            "The provider did not tell us your e-mail address (is the 'email' scope granted?)."
        )
    if claims.get("email_verified") is False:
        return Refused(f"The provider says {email} is not verified.")
    domain = email.rsplit("@", 1)[1].lower()
    if cfg.allowed_domains and domain not in cfg.allowed_domains:
        return Refused(f"{email} is not an address of a domain allowed to use this dashboard.")
    groups = groups_of(claims.get(cfg.groups_claim))
    if cfg.required_groups and not cfg.required_groups.intersection(groups):
        return Refused(f"{email} is in none of the groups allowed to use this dashboard.")
    name = claims.get("name")
    kept = [g for g in groups if g in cfg.required_groups]
    kept += [g for g in groups if g not in cfg.required_groups]
    return User(
        email, name if isinstance(name, str) and name.strip() else email, tuple(kept[:MAX_GROUPS])
    )


def session_user(request: Request) -> User | None:
    """The signed-in person of ``request``'s session, if any."""
    if "session" not in request.scope:
        return None
    user: Any = request.session.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("email"), str):
        return None
    name = user.get("name")
    return User(
        user["email"],
        name if isinstance(name, str) else user["email"],
        tuple(groups_of(user.get("groups"))),
    )


def local_path(wanted: str | None, base: str) -> str:
    """``wanted`` when it is a path on this site (after sign-in the browser goes back there);
    else the dashboard's front page. Never another site: ``//host`` and ``/\\host`` are
    refused, as are schemes."""
    if (
        not wanted
        or not wanted.startswith("/")
        or wanted.startswith(("//", "/\\"))
        or any(c in wanted for c in "\r\n\t")
    ):
        return f"{base}/"
    return wanted


# --------------------------------------------------------------------------- the session

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class PageSessions:
    """Starlette's ``SessionMiddleware`` for everything but the JSON API's writes.

    The session cookie signs a browser in; the dashboard's own forms prove they come from our
    pages with their CSRF token, but a JSON write (``POST /api/v1/…``) carries no such token.
    ``SameSite=Lax`` keeps other sites' POSTs from carrying the cookie, not those of a sibling
    subdomain, so a write through the API needs a bearer token (or a trusted proxy's headers),
    never the cookie alone: for those requests the session is not even read.
    """

    def __init__(self, app: ASGIApp, /, **options: Any) -> None:
        self.app = app
        self.with_session = SessionMiddleware(app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method", "GET") not in SAFE_METHODS:
            root = str(scope.get("root_path", "")).rstrip("/")
            path = str(scope.get("path", ""))
            if path.removeprefix(root).startswith("/api/"):
                await self.app(scope, receive, send)
                return
        await self.with_session(scope, receive, send)


# --------------------------------------------------------------------------- the routes

Page = Callable[[Request, int, str, str], Response]
"""A message page of the dashboard: (request, status, heading, message)."""


class OidcSignIn:
    """The sign-in routes, the dashboard's gate and its :class:`Viewer` for one configuration."""

    def __init__(
        self,
        cfg: OidcConfig,
        page: Page,
        may_check_in: Callable[[User, str | None], bool],
        clock: Callable[[], datetime],
    ) -> None:
        self.cfg = cfg
        self.page = page
        self.may_check_in = may_check_in
        self.clock = clock
        self.oauth = OAuth()
        self.client: Any = self.oauth.register(
            name="oidc",
            client_id=cfg.client_id,
            client_secret=cfg.client_secret.get_secret_value(),
            server_metadata_url=cfg.metadata_url,
            client_kwargs={"scope": cfg.scopes, "code_challenge_method": "S256"},
        )

    def session_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`PageSessions`, passed on to Starlette's
        ``SessionMiddleware`` (which always sets HttpOnly)."""
        return {
            "secret_key": self.cfg.session_secret.get_secret_value(),
            "session_cookie": SESSION_COOKIE,
            "max_age": SESSION_MAX_AGE,
            "same_site": "lax",
            "https_only": self.cfg.secure_cookies,
        }

    def routes(self) -> list[BaseRoute]:
        return [
            Route(LOGIN_PATH, self.login, methods=["GET"], name="oidc_login"),
            Route(CALLBACK_PATH, self.callback, methods=["GET"], name="oidc_callback"),
            Route(LOGOUT_PATH, self.logout, methods=["POST"], name="oidc_logout"),
            Route(SIGNED_OUT_PATH, self.signed_out, methods=["GET"], name="oidc_signed_out"),
        ]

    # -- the gate and the viewer

    def _login_url(self, request: Request) -> str:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return f"{_base(request)}{LOGIN_PATH}?next={quote(here, safe='/')}"

    def login_redirect(self, request: Request) -> Response:
        return RedirectResponse(self._login_url(request), status_code=303)

    def gated(self, route: BaseRoute) -> BaseRoute:
        """``route`` (a dashboard page) for whoever may read (:mod:`okrsync.api.principal`:
        a signed-in person, a token with ``read``, anyone under ``OKRSYNC_PUBLIC_READ``); a
        browser with none of them is sent to sign in rather than answered 401."""
        if not isinstance(route, Route):
            return route
        endpoint: Callable[[Request], Awaitable[Response]] = route.endpoint

        async def guarded(request: Request) -> Response:
            refusal = await dashboard_refusal(request)
            if refusal is None:
                return await endpoint(request)
            if refusal.status_code == 401 and bearer_token(request) is None:
                return self.login_redirect(request)
            return refusal  # a token that is none, or without the read scope

        methods = None if route.methods is None else sorted(route.methods)
        return Route(route.path, guarded, methods=methods, name=route.name)

    def form_origins(self) -> tuple[str, ...]:
        """Where our forms may lead besides here: the provider (logout goes on to it)."""
        metadata: Mapping[str, Any] = self.client.server_metadata or {}
        origins = {_origin(self.cfg.issuer)}
        end = metadata.get("end_session_endpoint")
        if isinstance(end, str) and end:
            origins.add(_origin(end))
        return tuple(sorted(origins))

    def viewer(self, request: Request) -> Viewer | None:
        user = session_user(request)
        if user is None:  # reading without signing in (public reads, a token)
            if bearer_token(request) is not None:
                return None  # a script: nothing to sign in to
            return Viewer("", "", "", "", lambda owner: False, login=self._login_url(request))
        flash = request.session.pop("flash", None)
        text = flash.get("text") if isinstance(flash, dict) else None
        return Viewer(
            name=user.name,
            email=user.email,
            csrf=csrf.session_token(request.session),
            logout=_base(request) + LOGOUT_PATH,
            may_check_in=lambda owner: self.may_check_in(user, owner),
            form_action=self.form_origins(),
            flash=text if isinstance(text, str) else None,
            flash_failed=bool(isinstance(flash, dict) and flash.get("failed")),
        )

    # -- the endpoints

    async def _metadata(self) -> Mapping[str, Any]:
        metadata: Mapping[str, Any] = await self.client.load_server_metadata()
        if str(metadata.get("issuer", "")).rstrip("/") != self.cfg.issuer:
            self.client.server_metadata = {}  # read it again next time
            raise OidcSettingsError(
                f"the provider calls itself {metadata.get('issuer')!r}, not {self.cfg.issuer!r} "
                "(OKRSYNC_OIDC_ISSUER must be its issuer exactly)"
            )
        return metadata

    def _unreachable(self, request: Request, exc: Exception) -> Response:
        log.warning("oidc_provider_unavailable", issuer=self.cfg.issuer, error=str(exc))
        return self.page(
            request,
            502,
            "Sign-in is unavailable",
            f"The sign-in provider at {self.cfg.issuer} cannot be used right now: {exc}",
        )

    async def login(self, request: Request) -> Response:
        request.session["next"] = local_path(request.query_params.get("next"), _base(request))
        try:
            await self._metadata()
            response: Response = await self.client.authorize_redirect(
                request, self.cfg.redirect_uri
            )
        except (httpx.HTTPError, ValueError, OidcSettingsError) as exc:
            return self._unreachable(request, exc)
        return response

    async def callback(self, request: Request) -> Response:
        try:
            metadata = await self._metadata()
            token: dict[str, Any] = await self.client.authorize_access_token(request)
            claims = dict(token.get("userinfo") or {})
            if not claims:
                raise OAuthError(description="the provider sent no ID token")
            if self._incomplete(claims) and metadata.get("userinfo_endpoint"):
                extra = dict(await self.client.userinfo(token=token))
                if extra.get("sub") == claims.get("sub"):  # OIDC Core 5.3.2
                    claims = {**extra, **claims}
        except OAuthError as exc:
            log.info("oidc_sign_in_failed", error=exc.error, detail=exc.description)
            why = exc.description or exc.error or "the answer could not be checked"
            return self.page(request, 400, "Sign-in failed", f"Sign-in failed: {why}.")
        except (JoseError, JoserfcError) as exc:
            log.warning("oidc_id_token_refused", error=type(exc).__name__)
            return self.page(
                request, 400, "Sign-in failed", "Sign-in failed: the ID token is not valid."
            )
        except (httpx.HTTPError, ValueError, OidcSettingsError) as exc:
            return self._unreachable(request, exc)
        verdict = admit(claims, self.cfg)
        if isinstance(verdict, Refused):
            log.info("oidc_sign_in_refused", reason=verdict.reason)
            return self.page(request, 403, "Access refused", verdict.reason)
        back = local_path(request.session.get("next"), _base(request))
        request.session.clear()  # nothing from before the sign-in carries over
        request.session["user"] = verdict.as_session()
        csrf.session_token(request.session)
        log.info("oidc_signed_in", email=verdict.email, groups=len(verdict.groups))
        return RedirectResponse(back, status_code=303)

    def _incomplete(self, claims: Mapping[str, Any]) -> bool:
        """Whether the ID token lacks what the userinfo endpoint may add."""
        wanted = ["email", "name"] + ([self.cfg.groups_claim] if self.cfg.required_groups else [])
        return any(claim not in claims for claim in wanted)

    async def logout(self, request: Request) -> Response:
        form = await csrf.read_form(request)
        if not csrf.valid(request.session, form.get(csrf.FIELD)):
            return self.page(request, 403, "Refused", "This form has expired: reload the page.")
        user = session_user(request)
        request.session.clear()
        if user is not None:
            log.info("oidc_signed_out", email=user.email)
        end = None
        try:
            end = (await self._metadata()).get("end_session_endpoint")
        except (httpx.HTTPError, ValueError, OidcSettingsError) as exc:
            log.warning("oidc_provider_unavailable", issuer=self.cfg.issuer, error=str(exc))
        if not isinstance(end, str) or not end:
            return RedirectResponse(self.cfg.signed_out_uri, status_code=303)
        result = await self.client.create_logout_url(
            post_logout_redirect_uri=self.cfg.signed_out_uri, client_id=self.cfg.client_id
        )
        return RedirectResponse(str(result["url"]), status_code=303)

    async def signed_out(self, request: Request) -> Response:
        return self.page(
            request,
            200,
            "Signed out",
            "You have signed out of okrsync. Sign in again from the dashboard's front page.",
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _base(request: Request) -> str:
    root: Any = request.scope.get("root_path", "")
    return str(root).rstrip("/")
