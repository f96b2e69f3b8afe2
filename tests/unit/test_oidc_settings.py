"""OpenID Connect sign-in: its settings, who it lets in, where it sends a browser back, and the
dashboard check-in form's checks (okrsync.api.oidc, okrsync.api.csrf,
okrsync.api.dashboard_check_in). The flow against a real provider: tests/integration/
test_dashboard_sign_in.py."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from okrsync.api import csrf
from okrsync.api.dashboard_check_in import CheckInForm, parse_form
from okrsync.api.oidc import (
    MAX_GROUPS,
    SESSION_MAX_AGE,
    OidcConfig,
    OidcSettingsError,
    OidcSignIn,
    Refused,
    User,
    admit,
    local_path,
    oidc_config,
)
from okrsync.api.sign_in import check_in_rule
from okrsync.errors import SettingsError
from okrsync.settings import Settings, load_settings

SESSION_SECRET = "s" * 32


def settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "oidc_issuer": "https://id.example.com/realms/acme",
        "oidc_client_id": "okrsync",
        "oidc_client_secret": SecretStr("client-secret"),
        "oidc_base_url": "https://okr.example.com/",
        "oidc_allowed_domains": "example.com, Example.ORG",
        "session_secret": SecretStr(SESSION_SECRET),
    }
    values.update(changes)
    return Settings(**values)


def config(**changes: Any) -> OidcConfig:
    cfg = oidc_config(settings(**changes))
    assert cfg is not None
    return cfg


def test_without_an_issuer_sign_in_is_off() -> None:
    assert oidc_config(Settings()) is None
    assert oidc_config(settings(oidc_issuer="  ")) is None


def test_a_complete_configuration() -> None:
    cfg = config()
    assert cfg.issuer == "https://id.example.com/realms/acme"
    assert cfg.metadata_url == (
        "https://id.example.com/realms/acme/.well-known/openid-configuration"
    )
    assert cfg.redirect_uri == "https://okr.example.com/auth/callback"
    assert cfg.signed_out_uri == "https://okr.example.com/signed-out"
    assert cfg.allowed_domains == {"example.com", "example.org"}
    assert cfg.secure_cookies
    assert cfg.scopes == "openid email profile"


def test_the_discovery_address_may_be_given_instead_of_the_issuer() -> None:
    cfg = config(oidc_issuer="https://accounts.google.com/.well-known/openid-configuration")
    assert cfg.issuer == "https://accounts.google.com"
    assert cfg.metadata_url == "https://accounts.google.com/.well-known/openid-configuration"


def test_plain_http_is_for_this_machine_only() -> None:
    cfg = config(oidc_issuer="http://127.0.0.1:9000", oidc_base_url="http://localhost:8080")
    assert not cfg.secure_cookies
    with pytest.raises(OidcSettingsError, match=r"OKRSYNC_OIDC_ISSUER: .* must be https"):
        config(oidc_issuer="http://id.example.com")
    with pytest.raises(OidcSettingsError, match=r"OKRSYNC_OIDC_BASE_URL: .* must be https"):
        config(oidc_base_url="http://okr.example.com")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"oidc_client_id": None}, "OKRSYNC_OIDC_CLIENT_ID is required"),
        ({"oidc_client_secret": None}, "OKRSYNC_OIDC_CLIENT_SECRET is required"),
        ({"oidc_client_secret": SecretStr("")}, "OKRSYNC_OIDC_CLIENT_SECRET is required"),
        ({"oidc_base_url": None}, "OKRSYNC_OIDC_BASE_URL is required"),
        ({"session_secret": None}, "OKRSYNC_SESSION_SECRET is required"),
        ({"session_secret": SecretStr("short")}, "at least 32 characters"),
        ({"oidc_allowed_domains": ""}, "OKRSYNC_OIDC_ALLOWED_DOMAINS and/or"),
        ({"oidc_scopes": "email profile"}, "must include 'openid'"),
        ({"oidc_groups_claim": " "}, "OKRSYNC_OIDC_GROUPS_CLAIM"),
        ({"oidc_issuer": "id.example.com"}, "is not an http"),
        ({"oidc_base_url": "https://okr.example.com/?x=1"}, "query or fragment"),
    ],
)
def test_a_wrong_setting_is_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(OidcSettingsError, match=message) as caught:
        config(**changes)
    assert isinstance(caught.value, SettingsError)  # one line, exit 2, as every bad setting
    assert "client-secret" not in str(caught.value)
    assert SESSION_SECRET not in str(caught.value)


def test_the_secrets_come_from_secrets_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "okrsync_oidc_client_secret").write_text("from-a-file")
    (tmp_path / "okrsync_session_secret").write_text("f" * 40)
    monkeypatch.setenv("OKRSYNC_SECRETS_DIR", str(tmp_path))
    loaded = load_settings()
    assert loaded.oidc_client_secret is not None
    assert loaded.oidc_client_secret.get_secret_value() == "from-a-file"
    assert loaded.session_secret is not None
    assert "from-a-file" not in repr(loaded)


def claims(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "sub": "1",
        "email": "ada@example.com",
        "email_verified": True,
        "name": "Ada Lovelace",
        "groups": ["staff", "okr-editors"],
    }
    values.update(changes)
    return values


def test_a_person_of_an_allowed_domain_is_let_in() -> None:
    assert admit(claims(), config()) == User(
        "ada@example.com", "Ada Lovelace", ("staff", "okr-editors")
    )
    assert admit(claims(email="Grace@EXAMPLE.org", name=None), config()) == User(
        "Grace@EXAMPLE.org", "Grace@EXAMPLE.org", ("staff", "okr-editors")
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"email": "mallory@example.com.evil.org"}, "not an address of a domain allowed"),
        ({"email": "mallory@notexample.com"}, "not an address of a domain allowed"),
        ({"email_verified": False}, "is not verified"),
        ({"email": None}, "did not tell us your e-mail"),
        ({"email": "@example.com"}, "did not tell us your e-mail"),
    ],
)
def test_refusals_say_why(changes: dict[str, Any], reason: str) -> None:
    verdict = admit(claims(**changes), config())
    assert isinstance(verdict, Refused)
    assert reason in verdict.reason


def test_required_groups_from_a_configurable_claim() -> None:
    cfg = config(
        oidc_allowed_domains="", oidc_required_groups="okr-editors", oidc_groups_claim="roles"
    )
    assert isinstance(admit(claims(), cfg), Refused)  # "groups" is not the claim read
    let_in = admit(claims(roles=["okr-editors"], email="x@anywhere.net"), cfg)
    assert let_in == User("x@anywhere.net", "Ada Lovelace", ("okr-editors",))
    assert admit(claims(roles="okr-editors"), cfg) == User(
        "ada@example.com", "Ada Lovelace", ("okr-editors",)
    )
    refused = admit(claims(roles=["staff"]), cfg)
    assert isinstance(refused, Refused)
    assert "none of the groups" in refused.reason


def test_with_domains_and_groups_both_must_hold() -> None:
    cfg = config(oidc_required_groups="okr-editors")
    assert isinstance(admit(claims(), cfg), User)
    assert isinstance(admit(claims(groups=["staff"]), cfg), Refused)
    assert isinstance(admit(claims(email="ada@elsewhere.net"), cfg), Refused)


def test_the_groups_kept_are_bounded_and_the_required_ones_kept_first() -> None:
    cfg = config(oidc_required_groups="needed")
    many = [f"g{i}" for i in range(MAX_GROUPS + 50)] + ["needed"]
    user = admit(claims(groups=many), cfg)
    assert isinstance(user, User)
    assert len(user.groups) == MAX_GROUPS
    assert user.groups[0] == "needed"


@pytest.mark.parametrize(
    ("wanted", "back"),
    [
        ("/objectives/o?page=2", "/objectives/o?page=2"),
        (None, "/okr/"),
        ("", "/okr/"),
        ("https://evil.example/", "/okr/"),
        ("//evil.example/", "/okr/"),
        ("/\\evil.example/", "/okr/"),
        ("javascript:alert(1)", "/okr/"),
        ("/a\r\nSet-Cookie: x=1", "/okr/"),
    ],
)
def test_after_sign_in_the_browser_goes_back_only_to_this_site(
    wanted: str | None, back: str
) -> None:
    assert local_path(wanted, "/okr") == back


def test_the_form_token_is_per_session_and_checked() -> None:
    session: dict[str, Any] = {}
    assert not csrf.valid(session, "anything")
    token = csrf.session_token(session)
    assert csrf.session_token(session) == token
    assert csrf.valid(session, token)
    assert not csrf.valid(session, token + "x")
    assert not csrf.valid(session, None)
    assert not csrf.valid(session, "")
    assert csrf.session_token({}) != token


def test_the_check_in_form_is_checked_like_the_api_body() -> None:
    assert parse_form({"value": " 42.50 ", "confidence": "7", "note": " demo "}) == (
        CheckInForm(Decimal("42.50"), "demo", 7)
    )
    assert parse_form({"value": "3", "confidence": "", "note": ""}) == CheckInForm(
        Decimal(3), None, None
    )
    assert parse_form({"value": "", "confidence": "4"}) == CheckInForm(None, None, 4)
    assert parse_form({"value": " ", "confidence": ""}) == "Give a value, a confidence or both."
    for confidence in ("0", "11", "seven", "-1"):
        assert parse_form({"value": "3", "confidence": confidence}) == (
            "Confidence must be a whole number from 1 to 10."
        )
    refused = parse_form({"value": "lots"})
    assert isinstance(refused, str)
    assert refused.startswith("The value was not accepted")
    refused = parse_form({"value": "1", "note": "bell \x07"})
    assert isinstance(refused, str)
    assert refused.startswith("The note was not accepted")


def test_people_check_in_on_the_objectives_they_own_and_admins_anywhere() -> None:
    rule = check_in_rule(Settings(admin_groups="okr-admins"))
    ada = User("ada@example.com", "Ada", ("okr-editors",))
    assert rule(ada, "okr-editors")
    assert rule(ada, "ada@example.com")
    assert not rule(ada, "sales")
    assert not rule(ada, None)
    admin = User("root@example.com", "Root", ("okr-admins",))
    assert rule(admin, "sales") and rule(admin, None)


def test_the_session_cookie_is_secure_behind_https() -> None:
    def page(request: Any, status: int, heading: str, message: str) -> Any:
        raise AssertionError("not called")

    def sign_in(base_url: str) -> dict[str, Any]:
        cfg = config(oidc_issuer="http://127.0.0.1:1", oidc_base_url=base_url)
        rule = check_in_rule(Settings())
        return OidcSignIn(cfg, page, rule, lambda: datetime.now(UTC)).session_options()

    options = sign_in("https://okr.example.com")
    assert options["https_only"] is True
    assert options["same_site"] == "lax"
    assert options["secret_key"] == SESSION_SECRET
    assert options["max_age"] == SESSION_MAX_AGE
    assert sign_in("http://127.0.0.1:8080")["https_only"] is False
