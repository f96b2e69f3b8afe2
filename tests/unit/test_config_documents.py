"""The document models as the single source of the config's fields, and what loading costs."""

from __future__ import annotations

import gc
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from okrsync.config import ReferenceResolver, load_config_text
from okrsync.config.models import CycleDocument, KeyResultDocument, MetricCommon, MirrorCommon
from okrsync.config.pydantic_errors import check, valid_fields
from okrsync.domain.progress import KRKind
from okrsync.domain.schedule import Schedule
from okrsync.errors import ConfigErrors
from tests.unit.config_fixtures import CONNECTORS, VALID_ENV


def test_a_key_result_document_reads_yaml_scalars_as_the_config_means_them() -> None:
    document = KeyResultDocument.model_validate(
        {"id": 2026, "title": 7, "metric": "won", "kind": "increase", "target": "1_000"}
    )
    assert document.id == "2026"
    assert document.title == "7"
    assert document.kind is KRKind.INCREASE
    assert document.target == Decimal(1000)
    assert document.weight == Decimal(1)
    assert document.mirrors == []


def test_each_refused_field_is_reported_in_the_configs_words_at_its_key() -> None:
    data = {"id": "a b", "title": "t", "kind": "up", "weight": 0, "stale_after": "soon"}
    _, problems = check(KeyResultDocument, data)
    assert dict(problems) == {
        ("id",): "key result id 'a b' is not valid: use letters, digits and _ . : - "
        "(starting with a letter or digit)",
        ("kind",): "unknown kind 'up' (choose one of increase, decrease, stay_above, "
        "stay_below, stay_between, milestone)",
        ("weight",): "weight must be greater than 0, got 0",
        ("stale_after",): "expected a duration like 30s, 15m, 2h, 1d or 1h30m, got 'soon'",
    }


def test_valid_fields_keeps_what_is_right_in_a_refused_entry() -> None:
    values, wrong = valid_fields(
        KeyResultDocument, {"id": "kr", "title": "t", "kind": "nope", "targt": 3, "start": 1}
    )
    assert wrong == {"kind", "targt"}
    assert values["id"] == "kr"
    assert values["start"] == Decimal(1)
    assert values["target"] is None  # absent: its default


def test_a_mirrors_delivery_fields_make_its_policy() -> None:
    common = MirrorCommon.model_validate(
        {
            "connection": "hook",
            "min_interval": "10m",
            "min_change": "0.05",
            "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"},
            "schedule": "every 1d",
            "on_change": False,
        }
    )
    policy = common.delivery_policy()
    assert policy.min_interval == timedelta(minutes=10)
    assert policy.min_change == Decimal("0.05")
    assert policy.quiet_hours is not None and policy.quiet_hours.timezone == "Europe/Berlin"
    assert policy.schedule is not None and not policy.on_change


def test_resolving_references_copies_only_what_changes() -> None:
    untouched: dict[str, Any] = {"metrics": {"m": {"query": "SELECT 1"}}, "objectives": [{}]}
    data: dict[str, Any] = {
        "connections": {"c": {"url": "${A}", "timeout": 3}},
        **untouched,
    }
    result = ReferenceResolver({"A": "alpha"}, Path("/nope")).resolve(data)
    assert result.data["connections"]["c"] == {"url": "alpha", "timeout": 3}
    assert data["connections"]["c"]["url"] == "${A}"  # the input is left as it was
    assert result.data["metrics"] is untouched["metrics"]
    assert result.data["objectives"] is untouched["objectives"]
    nothing = {"metrics": {"m": {"query": "SELECT $1"}}}
    assert ReferenceResolver({}, Path("/nope")).resolve(nothing).data is nothing


def _config_with(key_results: int) -> str:
    lines = [
        "version: 1",
        "connections:",
        '  warehouse: {type: fake_sql, url: "postgres://x"}',
        "cycles:",
        "  - {id: q4, start: 2026-10-01, end: 2026-12-31}",
        "metrics:",
        "  won: {connection: warehouse, query: SELECT 1}",
        "objectives:",
        "  - id: o",
        "    title: O",
        "    cycle: q4",
        "    key_results:",
    ]
    for index in range(key_results):
        lines.append(
            f"      - {{id: kr{index}, title: K, metric: won, kind: increase, start: 0, "
            f"target: {index + 1}}}"
        )
    return "\n".join(lines) + "\n"


def test_loading_pauses_the_garbage_collector_and_leaves_it_on() -> None:
    collections: list[str] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections.append(phase)

    text = _config_with(500)  # many thousands of objects: several collections if allowed
    gc.callbacks.append(count)
    try:
        config = load_config_text(text, CONNECTORS, environ=VALID_ENV)
    finally:
        gc.callbacks.remove(count)
    assert len(config.key_results()) == 500
    # with the collector on, the objects built here would set off dozens of collections; paused,
    # at most the one it owes once back on
    assert len(collections) <= 1
    assert gc.isenabled()


def test_a_metrics_own_fields_and_the_cycles_are_typed_by_their_models() -> None:
    metric = MetricCommon.model_validate(
        {"connection": 7, "schedule": "every 15m", "min": "1_000", "max": None}
    )
    assert metric.connection == "7"
    assert isinstance(metric.schedule, Schedule)
    assert metric.min == Decimal(1000)
    _, problems = check(MetricCommon, {"schedule": "hourly", "max": [1]})
    assert dict(problems) == {
        ("connection",): "missing required key 'connection'",
        ("schedule",): "'hourly' is not a schedule: use 'every <n>s|m|h|d' (e.g. 'every 15m') "
        "or a 5-field cron string (e.g. '*/10 * * * *')",
        ("max",): "expected a number, got a list",
    }
    cycle = CycleDocument.model_validate(
        {"id": "q4", "start": "2026-10-01", "end": date(2026, 12, 31)}
    )
    assert (cycle.start, cycle.end) == (date(2026, 10, 1), date(2026, 12, 31))


def test_a_connections_fetch_deadline_is_read_by_its_model_and_never_quoted() -> None:
    text = """\
version: 1
connections:
  warehouse: {type: fake_sql, url: "postgres://x", fetch_deadline: "${DEADLINE}"}
  other: {type: fake_sql, url: "postgres://y", fetch_deadline: 2m}
"""
    with pytest.raises(ConfigErrors) as caught:
        load_config_text(text, CONNECTORS, environ={"DEADLINE": "hunter2-soon"})
    [error] = caught.value.errors
    assert (error.line, error.key) == (3, "connections.warehouse.fetch_deadline")
    assert error.message == "expected a duration like 30s, 15m, 2h, 1d or 1h30m, got a string"
    config = load_config_text(text, CONNECTORS, environ={"DEADLINE": "45s"})
    assert config.fetch_deadline("warehouse") == timedelta(seconds=45)
    assert config.fetch_deadline("other") == timedelta(minutes=2)
