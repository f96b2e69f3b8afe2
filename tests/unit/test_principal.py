"""Who a request acts for and what it may do: the parts of :mod:`okrsync.api.principal` that
need no store or socket (those are in tests/integration/test_api_sign_in.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from okrsync.api.principal import (
    ENV_TOKEN_SUBJECT,
    EVERY_SCOPE,
    Principal,
    Scope,
    author_of,
    from_trusted_proxy,
    listed,
    loopback_only,
    may_check_in,
    person,
)
from okrsync.settings import Settings


def test_a_proxy_is_trusted_only_from_its_addresses() -> None:
    proxies = "10.0.0.0/8, 192.168.1.7,::1"
    assert from_trusted_proxy("10.2.3.4", proxies)
    assert from_trusted_proxy("192.168.1.7", proxies)
    assert from_trusted_proxy("::1", proxies)
    assert from_trusted_proxy("::ffff:10.0.0.1", proxies)  # IPv4 on a dual-stack socket
    assert not from_trusted_proxy("192.168.1.8", proxies)
    assert not from_trusted_proxy("127.0.0.1", proxies)
    assert not from_trusted_proxy("10.2.3.4", "")
    assert not from_trusted_proxy(None, proxies)
    assert not from_trusted_proxy("not-an-address", proxies)


def test_a_bad_proxy_setting_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"'10\.0\.0\.0/33' is not an IP address or CIDR"):
        Settings(trusted_proxies="127.0.0.1,10.0.0.0/33")


def test_people_read_and_check_in_and_admin_groups_make_admins() -> None:
    settings = Settings(admin_groups="okr-admins, boss@example.com")
    ann = person(settings, "ann@example.com", ["sales", ""], "proxy")
    assert ann.scopes == {Scope.READ, Scope.CHECK_IN}
    assert ann.groups == {"sales"}
    assert (ann.email, ann.via, ann.subject) == ("ann@example.com", "proxy", "ann@example.com")
    assert person(settings, "bob@example.com", ["okr-admins"], "oidc").has(Scope.ADMIN)
    assert person(settings, "boss@example.com", [], "oidc", "Boss").scopes == EVERY_SCOPE
    assert not person(Settings(), "bob@example.com", ["okr-admins"], "proxy").has(Scope.ADMIN)


def test_people_check_in_on_what_they_own_tokens_anywhere() -> None:
    settings = Settings(admin_groups="okr-admins")
    ann = person(settings, "ann@example.com", ["sales"], "proxy")
    assert may_check_in(ann, "ann@example.com")
    assert may_check_in(ann, "sales")
    assert not may_check_in(ann, "marketing")
    assert not may_check_in(ann, None)
    admin = person(settings, "root@example.com", ["okr-admins"], "oidc")
    assert may_check_in(admin, "marketing")
    writer = Principal("token:ci", frozenset({Scope.CHECK_IN}))
    assert may_check_in(writer, "marketing")
    reader = Principal("token:wall", frozenset({Scope.READ}))
    assert not may_check_in(reader, "marketing")


def test_listed_items_are_stripped_and_empty_ones_dropped() -> None:
    assert listed(" a, b ,,c,") == ["a", "b", "c"]
    assert listed("") == []


def test_a_check_in_is_recorded_as_the_person_or_the_token_that_made_it() -> None:
    ann = person(Settings(), "ann@example.com", ["sales"], "oidc", "Ann")
    assert author_of(ann, "api") == "ann@example.com"
    assert author_of(Principal("token:ci", frozenset({Scope.CHECK_IN})), "api") == "token:ci"
    assert author_of(Principal(ENV_TOKEN_SUBJECT, EVERY_SCOPE), "api") == "api"


def test_reads_from_loopback_only_are_not_beyond_loopback() -> None:
    assert loopback_only("127.0.0.1")
    assert loopback_only("::1")
    assert loopback_only("localhost")
    assert not loopback_only("0.0.0.0")
    assert not loopback_only("::")
    assert not loopback_only("")
    assert not loopback_only("okrsync.internal")
