"""Secrets: references inside ``connections`` never surface in error text."""

from __future__ import annotations

from pathlib import Path

import pytest

from okrsync.config import load_config_text
from okrsync.errors import ConfigErrors
from tests.unit.config_fixtures import CONNECTORS, VALID_CONFIG

CANARY = "canary-7f3a9c1e-do-not-print"


def _errors(text: str, environ: dict[str, str]) -> str:
    with pytest.raises(ConfigErrors) as caught:
        load_config_text(text, CONNECTORS, environ=environ, secrets_dir=Path("/nope"))
    errors = caught.value
    return "\n".join([str(errors), *(repr(vars(e)) for e in errors.errors)])


def test_canary_in_a_connection_with_a_wrong_type_elsewhere() -> None:
    text = VALID_CONFIG.replace(
        'warehouse: {type: fake_sql, url: "${WAREHOUSE_URL}"}',
        'warehouse: {type: fake_sql, url: "${WAREHOUSE_URL}", timeout: [1, 2], extra: x}',
    )
    rendered = _errors(text, {"WAREHOUSE_URL": CANARY})
    assert "connections.warehouse.timeout" in rendered
    assert "connections.warehouse.extra" in rendered
    assert CANARY not in rendered


def test_canary_in_the_field_that_is_wrong() -> None:
    text = VALID_CONFIG.replace(
        'warehouse: {type: fake_sql, url: "${WAREHOUSE_URL}"}',
        'warehouse: {type: fake_sql, url: "${WAREHOUSE_URL}", timeout: "${TIMEOUT}"}',
    )
    rendered = _errors(text, {"WAREHOUSE_URL": "x", "TIMEOUT": CANARY})
    assert "connections.warehouse.timeout: expected a whole number" in rendered
    assert CANARY not in rendered


def test_canary_as_a_connection_type_or_embedded_in_text() -> None:
    text = VALID_CONFIG.replace(
        'warehouse: {type: fake_sql, url: "${WAREHOUSE_URL}"}',
        'warehouse: {type: "${KIND}", url: "x"}\n  other: {type: "fake-${KIND}", url: "y"}',
    )
    rendered = _errors(text, {"KIND": CANARY})
    assert "unknown connection type" in rendered
    assert CANARY not in rendered


def test_canary_from_secrets_dir(tmp_path: Path) -> None:
    (tmp_path / "WAREHOUSE_URL").write_text(CANARY + "\n", encoding="utf-8")
    text = VALID_CONFIG.replace("won:\n    connection: warehouse", "won:\n    connection: warehous")
    with pytest.raises(ConfigErrors) as caught:
        load_config_text(text, CONNECTORS, environ={}, secrets_dir=tmp_path)
    assert CANARY not in str(caught.value)


def test_secret_values_lists_references_and_secret_fields(tmp_path: Path) -> None:
    (tmp_path / "HOOK_SECRET").write_text("hook-signing-key\n", encoding="utf-8")
    config = load_config_text(
        VALID_CONFIG, CONNECTORS, environ={"WAREHOUSE_URL": "db-url-secret"}, secrets_dir=tmp_path
    )
    assert set(config.secret_values()) == {"db-url-secret", "hook-signing-key"}


def test_literal_secret_field_is_a_secret_too() -> None:
    text = VALID_CONFIG.replace('secret: "${HOOK_SECRET:-}"', "secret: written-in-plain-text")
    config = load_config_text(text, CONNECTORS, environ={"WAREHOUSE_URL": "u"})
    assert "written-in-plain-text" in config.secret_values()


def test_defaults_of_references_are_not_secrets() -> None:
    text = VALID_CONFIG.replace('url: "http://127.0.0.1:9000/okr"', 'url: "${HOOK_URL:-http://h/}"')
    config = load_config_text(text, CONNECTORS, environ={"WAREHOUSE_URL": "u"})
    assert "http://h/" not in config.secret_values()
