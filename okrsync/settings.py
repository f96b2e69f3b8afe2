"""Process settings from the environment (``OKRSYNC_*``) and ``/run/secrets``."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRETS_DIR = Path("/run/secrets")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OKRSYNC_",
        secrets_dir=str(DEFAULT_SECRETS_DIR) if DEFAULT_SECRETS_DIR.is_dir() else None,
        extra="ignore",
    )

    config: Path = Path("okrsync.yaml")
    database_url: SecretStr = SecretStr("sqlite:///okrsync.db")
    secrets_dir: Path = DEFAULT_SECRETS_DIR
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    instance_id: str | None = None
    # OpenID Connect sign-in for the dashboard (okrsync.api.oidc); on when the issuer is set
    oidc_issuer: str | None = None  # e.g. https://accounts.google.com (discovery below it)
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_base_url: str | None = None  # the dashboard's address as browsers see it
    oidc_allowed_domains: str = ""  # e-mail domains, comma-separated
    oidc_required_groups: str = ""  # any one of these groups, comma-separated
    oidc_groups_claim: str = "groups"
    oidc_scopes: str = "openid email profile"
    session_secret: SecretStr | None = None  # signs the session cookie (32+ characters)
    dispatch_max_attempts: int = 8
    dispatch_batch: int = 100
    lease_seconds: float = 120.0
    # a push to a mirror is cut after this long (its lease is renewed meanwhile), then retried
    push_timeout_seconds: float = Field(default=300.0, gt=0)
    # on SIGTERM the pass in progress gets this long to finish, then it is abandoned (a fetch or
    # a push against a hung vendor); keep it below the orchestrator's kill timeout (k8s: 30 s)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # the HTTP side of ``okrsync run``: health, metrics, JSON API, dashboard, inbound webhooks
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    api_token: SecretStr | None = None  # bearer token for every write; none: writes refused
    # keys the digests of connections' secrets, so ``plan`` can show "(secret changed)"; unset: not
    secret_digest_key: SecretStr | None = None
    # sign-in (okrsync.api.principal): reads need a principal with the read scope unless this
    public_read: bool = False
    # addresses/CIDRs (comma-separated) whose X-Forwarded-Email/-Groups headers are believed
    trusted_proxies: str = ""
    # groups (or e-mails), comma-separated, whose signed-in people get the admin scope
    admin_groups: str = ""
    # webhook events: the first runs at once, later ones within this window together
    hook_debounce_seconds: float = Field(default=2.0, ge=0)
    ready_heartbeat_seconds: float = Field(
        default=420.0, gt=0
    )  # scheduler silent longer: not ready

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"{part!r} is not an IP address or CIDR") from None
        return value


def digest_key(settings: Settings) -> bytes | None:
    """``OKRSYNC_SECRET_DIGEST_KEY`` as the HMAC key, or None when unset (or empty)."""
    key = settings.secret_digest_key
    return key.get_secret_value().encode() if key and key.get_secret_value() else None


def load_settings(**overrides: Any) -> Settings:
    """The settings, each ``okrsync_<name>`` secrets file read from ``OKRSYNC_SECRETS_DIR``.

    A value that cannot be used is a :class:`~okrsync.errors.SettingsError` naming the setting,
    the value (unless it is a secret) and what is allowed: one clear line, never a traceback.
    """
    from okrsync.errors import SettingsError

    folder = Path(os.environ.get("OKRSYNC_SECRETS_DIR") or DEFAULT_SECRETS_DIR)
    try:
        return Settings(_secrets_dir=folder if folder.is_dir() else None, **overrides)
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """The first bad setting as one line: ``OKRSYNC_LOG_FORMAT='xml': …``."""
    problem = exc.errors(include_url=False)[0]
    name = str(problem["loc"][0]) if problem["loc"] else ""
    field = Settings.model_fields.get(name)
    secret = field is not None and field.annotation in (SecretStr, SecretStr | None)
    shown = "(hidden)" if secret else repr(problem.get("input"))
    allowed = problem["msg"].removeprefix("Input should be ")
    more = f" ({len(exc.errors())} bad settings in all)" if len(exc.errors()) > 1 else ""
    return f"bad setting OKRSYNC_{name.upper()}={shown}: should be {allowed}{more}"
