"""Whatever the input, loading ends in a Config or in ConfigErrors, never anything else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from okrsync.config import Config, load_config_text
from okrsync.errors import ConfigErrors
from tests.unit.config_fixtures import CONNECTORS, VALID_CONFIG

ENV = {"WAREHOUSE_URL": "sqlite:///x.db"}
NO_SECRETS = Path("/nonexistent-okrsync-secrets")


def outcome(text: str) -> None:
    failure: ConfigErrors | None = None
    try:
        result = load_config_text(text, CONNECTORS, environ=ENV, secrets_dir=NO_SECRETS)
    except ConfigErrors as exc:
        failure = exc
    if failure is None:
        assert isinstance(result, Config)
        return
    assert failure.errors
    for error in failure.errors:
        assert error.message
        assert error.line is None or error.line >= 1


YAML_BITS = st.sampled_from(
    [
        "version: 1\n",
        "connections:",
        "metrics:",
        "objectives:",
        "cycles:",
        "\n",
        "  ",
        "- ",
        "{",
        "}",
        "[",
        "]",
        ": ",
        ", ",
        "&a ",
        "*a",
        "<<: ",
        "!tag ",
        "${X}",
        "${",
        "$${",
        "'",
        '"',
        "type: fake_sql",
        "type: fake_hook",
        "url: x",
        "query: q",
        "connection: w",
        "id: a",
        "kind: increase",
        "target: 1",
        "start: 0",
        "2026-10-01",
        "null",
        "true",
        "1.5",
        ".inf",
        "key_results:",
        "mirrors:",
        "value: a + b",
        "metric: m",
        "#",
        "? ",
        "|\n",
        "---\n",
        "\t",
    ]
)

yaml_ish = st.lists(YAML_BITS | st.text(max_size=5), max_size=40).map("".join)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
keys = st.sampled_from(
    [
        "version",
        "defaults",
        "connections",
        "cycles",
        "metrics",
        "objectives",
        "type",
        "url",
        "query",
        "connection",
        "schedule",
        "id",
        "title",
        "cycle",
        "start",
        "end",
        "kind",
        "target",
        "low",
        "high",
        "metric",
        "value",
        "key_results",
        "mirrors",
        "weight",
        "parent",
        "stale_after",
        "fake_sql",
        "fake_hook",
        "w",
        "m",
    ]
) | st.text(max_size=8)
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yaml_ish)
def test_arbitrary_yaml_ish_text(text: str) -> None:
    outcome(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_arbitrary_documents(data: Any) -> None:
    outcome(dump(data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_arbitrary_documents_with_a_version(data: Any) -> None:
    if isinstance(data, dict):
        data = {"version": 1, **data}
    outcome(dump(data))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(VALID_CONFIG)), st.text(max_size=6))
def test_valid_config_with_a_splice(position: int, insert: str) -> None:
    outcome(VALID_CONFIG[:position] + insert + VALID_CONFIG[position:])
