"""The loader: the valid example, and every broken config in ``broken_configs/``."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from okrsync.config import Config, load_config, load_config_text
from okrsync.domain.progress import KRKind
from okrsync.errors import ConfigErrors
from tests.unit.config_fixtures import CONNECTORS, VALID_CONFIG, VALID_ENV

BROKEN = Path(__file__).parent / "broken_configs"


def _expectations() -> list[tuple[str, list[dict[str, Any]]]]:
    table = yaml.safe_load((BROKEN / "expected.yaml").read_text(encoding="utf-8"))
    return sorted(table.items())


def load_valid(**kwargs: Any) -> Config:
    return load_config_text(VALID_CONFIG, CONNECTORS, environ=VALID_ENV, **kwargs)


def errors_of(text: str, environ: dict[str, str] | None = None) -> ConfigErrors:
    with pytest.raises(ConfigErrors) as caught:
        load_config_text(text, CONNECTORS, environ=environ or VALID_ENV, secrets_dir=Path("/nope"))
    return caught.value


def test_valid_example_loads(tmp_path: Path) -> None:
    config = load_valid(secrets_dir=tmp_path)

    assert config.version == 1
    assert config.source is None
    assert config.connection_types == {"warehouse": "fake_sql", "hook": "fake_hook"}
    warehouse = config.connections["warehouse"]
    assert isinstance(getattr(warehouse, "url", None), SecretStr)
    assert config.cycles["2026-Q4"].start == date(2026, 10, 1)
    assert config.cycles["2026-Q4"].end == date(2026, 12, 31)
    assert config.cycles["2026-Q4"].window().params()["cycle_start"] == date(2026, 10, 1)

    won = config.metrics["won"]
    assert won.connection == "warehouse"
    assert won.schedule.text == "every 15m"
    assert config.metrics["lost"].schedule.text == "every 1h"  # defaults.schedule
    assert getattr(won.spec, "query", "").startswith("SELECT SUM(amount)")
    assert won.line == 11

    bookings = config.key_result("bookings")
    assert bookings.objective_id == "revenue"
    assert bookings.kind is KRKind.INCREASE
    assert bookings.start == Decimal("0")
    assert bookings.target == Decimal("1000.5")
    assert bookings.target_spec.target == Decimal("1000.5")
    assert bookings.weight == Decimal(1)
    assert bookings.unit == "USD"
    assert bookings.stale_after == timedelta(hours=2)
    assert bookings.metric_names() == frozenset({"won"})
    assert [m.key for m in bookings.mirrors] == [
        "bookings/hook/" + bookings.mirrors[0].key.rsplit("/", 1)[1],
        "bookings/hook/" + bookings.mirrors[1].key.rsplit("/", 1)[1],
    ]
    assert len({m.key for m in bookings.mirrors}) == 2
    assert all(len(m.key.rsplit("/", 1)[1]) == 12 for m in bookings.mirrors)

    win_rate = config.key_result("win-rate")
    assert win_rate.value is not None
    assert win_rate.value.text == "won / (won + lost) * 100"
    assert win_rate.metric_names() == frozenset({"won", "lost"})
    assert win_rate.low == Decimal("0.1")  # a YAML float, exactly
    assert win_rate.stale_after == timedelta(days=1)  # defaults.stale_after

    revenue = config.objective("revenue")
    assert revenue.owner == "sales"
    assert revenue.parent is None
    assert [kr.id for kr in revenue.key_results] == ["bookings", "win-rate"]
    retention = config.objective("retention")
    assert retention.parent == "revenue"
    assert retention.weight == Decimal("2.5")
    assert retention.key_results == ()

    assert config.secret_values() == [VALID_ENV["WAREHOUSE_URL"]]
    with pytest.raises(KeyError):
        config.key_result("nope")
    with pytest.raises(KeyError):
        config.objective("nope")


def test_mirror_keys_are_stable_across_loads() -> None:
    first = [m.key for kr in load_valid().key_results() for m in kr.mirrors]
    second = [m.key for kr in load_valid().key_results() for m in kr.mirrors]
    assert first == second


def test_load_config_from_a_file_remembers_its_path(tmp_path: Path) -> None:
    path = tmp_path / "okrsync.yaml"
    path.write_text(VALID_CONFIG, encoding="utf-8")
    config = load_config(path, CONNECTORS, environ=VALID_ENV, secrets_dir=tmp_path)
    assert config.source == path


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load_config(tmp_path / "absent.yaml", CONNECTORS, environ={})
    assert "cannot read the config" in str(caught.value)


def test_defaults_section_is_optional_and_schedule_falls_back() -> None:
    text = VALID_CONFIG.replace("defaults:\n  schedule: every 1h\n  stale_after: 1d\n", "")
    config = load_config_text(text, CONNECTORS, environ=VALID_ENV)
    assert config.metrics["lost"].schedule.text == "every 1h"
    assert config.key_result("win-rate").stale_after is None


def test_cron_schedule_and_string_dates() -> None:
    text = VALID_CONFIG.replace("schedule: every 15m", 'schedule: "*/10 * * * *"').replace(
        "start: 2026-10-01", 'start: "2026-10-01"'
    )
    config = load_config_text(text, CONNECTORS, environ=VALID_ENV)
    assert config.metrics["won"].schedule.text == "*/10 * * * *"
    assert config.cycles["2026-Q4"].start == date(2026, 10, 1)


def test_anchors_merge_keys_and_x_keys() -> None:
    text = VALID_CONFIG.replace(
        "version: 1\n", "version: 1\nx-sql: &sql {type: fake_sql}\n"
    ).replace(
        'warehouse: {type: fake_sql, url: "${WAREHOUSE_URL}"}',
        'warehouse: {<<: *sql, url: "${WAREHOUSE_URL}"}',
    )
    config = load_config_text(text, CONNECTORS, environ=VALID_ENV)
    assert config.connection_types["warehouse"] == "fake_sql"


@pytest.mark.parametrize(("name", "expected"), _expectations())
def test_broken_config(name: str, expected: list[dict[str, Any]]) -> None:
    secrets_dir = Path("/nonexistent-okrsync-secrets")
    with pytest.raises(ConfigErrors) as caught:
        load_config(
            BROKEN / name,
            CONNECTORS,
            environ={"WAREHOUSE_URL": "sqlite:///x.db"},
            secrets_dir=secrets_dir,
        )
    errors = caught.value.errors
    found = [(e.line, e.key or "", e.message) for e in errors]
    assert len(errors) == len(expected), found
    for error, want in zip(errors, expected, strict=True):
        assert error.file == str(BROKEN / name)
        assert error.line == want["line"], found
        assert (error.key or "") == want["key"], found
        assert want["message"].replace("{secrets_dir}", str(secrets_dir)) in error.message, found


def test_broken_corpus_is_large_and_fully_listed() -> None:
    listed = {name for name, _ in _expectations()}
    present = {p.name for p in BROKEN.glob("*.yaml")} - {"expected.yaml"}
    assert listed == present
    assert len(present) >= 25


def test_errors_are_collected_in_one_pass() -> None:
    text = (
        VALID_CONFIG.replace("target: 1000.5", "target: abc")
        .replace("cycle: 2026-Q4\n    owner", "cycle: 2026-Q1\n    owner")
        .replace("metric: won\n", "metric: wonn\n")
    )
    messages = [e.message for e in errors_of(text).errors]
    assert any("expected a number, got 'abc'" in m for m in messages)
    assert any("unknown cycle '2026-Q1'" in m for m in messages)
    assert any("unknown metric 'wonn'" in m for m in messages)


def test_errors_render_file_line_and_key() -> None:
    text = VALID_CONFIG.replace("target: 1000.5", "target: abc")
    rendered = str(errors_of(text))
    assert (
        "<config>:32: objectives[0].key_results[0].target: expected a number, got 'abc'" in rendered
    )


def test_numbers_may_be_numeric_strings_and_ints_become_exact_decimals() -> None:
    text = VALID_CONFIG.replace("target: 1000.5", 'target: "1_000.25"')
    assert load_config_text(text, CONNECTORS, environ=VALID_ENV).key_result(
        "bookings"
    ).target == Decimal("1000.25")


def test_non_finite_numbers_are_rejected() -> None:
    text = VALID_CONFIG.replace("target: 1000.5", "target: .inf")
    assert "expected a finite number" in str(errors_of(text))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("1d2h3m4s", 93784)],
)
def test_durations(text: str, seconds: int) -> None:
    from okrsync.config import parse_duration

    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0s", "1x", "h", "1m1h", "-1h", "1.5h"])
def test_bad_durations(text: str) -> None:
    from okrsync.config import parse_duration

    assert parse_duration(text) is None


def test_an_unused_connection_is_fine() -> None:
    text = VALID_CONFIG.replace(
        "cycles:\n", "  spare: {type: fake_hook, url: http://127.0.0.1:1/}\ncycles:\n"
    )
    assert "spare" in load_config_text(text, CONNECTORS, environ=VALID_ENV).connections


def test_duplicate_mirror_is_reported() -> None:
    text = VALID_CONFIG.replace(
        "          - {connection: hook, channel: sales}\n",
        "          - {connection: hook, channel: sales}\n" * 2,
    )
    assert "the same mirror is listed twice" in str(errors_of(text))


@pytest.mark.parametrize(
    ("old", "new", "only"),
    [
        ("cycles:\n  - {id", "cycles:\n  x: {id", "expected cycles"),
        (
            VALID_CONFIG[VALID_CONFIG.index("metrics:") : VALID_CONFIG.index("objectives:")],
            "metrics: [won, lost]\n",
            "expected metrics",
        ),
        ("connections:\n  warehouse:", "connections:\n  - warehouse:", "expected connections"),
    ],
)
def test_an_unreadable_section_does_not_cascade(old: str, new: str, only: str) -> None:
    text = VALID_CONFIG.replace(old, new, 1)
    if new.startswith("connections"):
        text = text.replace("\n  hook:", "\n  - hook:", 1)
    errors = errors_of(text).errors
    assert [e.message.split(" (")[0] for e in errors] == [only], [e.message for e in errors]
