"""The published JSON Schema accepts the valid example and rejects what the loader rejects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from okrsync.config import config_json_schema, read_yaml, write_schema
from tests.unit.config_fixtures import CONNECTORS, VALID_CONFIG


def as_json(text: str) -> Any:
    """What an editor validates: the YAML as JSON data (dates become strings)."""
    data = read_yaml(text).data
    return json.loads(json.dumps(data, default=str))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = config_json_schema(CONNECTORS)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_declares_its_dialect() -> None:
    assert config_json_schema(CONNECTORS)["$schema"] == (
        "https://json-schema.org/draft/2020-12/schema"
    )


def test_valid_example_passes(validator: jsonschema.Draft202012Validator) -> None:
    errors = [e.message for e in validator.iter_errors(as_json(VALID_CONFIG))]
    assert errors == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("type: fake_sql,", "type: jiraa,"),  # unknown connection type
        ("type: fake_sql,", "type: fake_sql, nope: 1,"),  # unknown connection field
        ("schedule: every 15m", "schedual: every 15m"),  # unknown metric field
        ("kind: increase", "kind: increasing"),
        ("target: 1000.5", "target: lots"),
        ("{connection: hook, channel: sales}", "{connection: hook, chanel: sales}"),
        ("stale_after: 2h", "stale_after: soon"),
        ("version: 1", "version: 2"),
        ("weight: 2.5", "weight: 0"),
        ("        metric: won\n", "        metric: won\n        value: won * 2\n"),  # both
        ("kind: increase", "kind: increase\n        stretch: lots"),
        ("kind: increase", "kind: increase\n        grading: stretch"),
        ("kind: increase", "kind: increase\n        check_ins: {manual_value: sometimes}"),
        ("kind: increase", "kind: increase\n        check_ins: {remind: {connection: slack}}"),
    ],
)
def test_schema_rejects(validator: jsonschema.Draft202012Validator, old: str, new: str) -> None:
    assert old in VALID_CONFIG
    assert not validator.is_valid(as_json(VALID_CONFIG.replace(old, new, 1)))


def test_manual_key_results_and_check_ins_pass(validator: jsonschema.Draft202012Validator) -> None:
    manual = VALID_CONFIG.replace("        metric: won\n", "", 1).replace(
        "kind: increase",
        "kind: increase\n        stretch: 2000\n        grading: progress\n"
        '        check_ins: {every: "0 9 * * 1", remind: {connection: hook, channel: "#s"}}',
        1,
    )
    assert [e.message for e in validator.iter_errors(as_json(manual))] == []


def test_connection_types_are_offered_for_autocomplete() -> None:
    schema = config_json_schema(CONNECTORS)
    branches = schema["properties"]["connections"]["additionalProperties"]["oneOf"]
    consts = sorted(
        schema["$defs"][b["$ref"].rsplit("/", 1)[1]]["properties"]["type"]["const"]
        for b in branches
    )
    assert consts == ["fake_hook", "fake_sql", "fake_tracker"]


def test_work_entries_follow_the_trackers_work_model(
    validator: jsonschema.Draft202012Validator,
) -> None:
    kr = "        stale_after: 2h\n"
    entry = "          - {connection: jira, jql: 'parent = OKR-12', backlink: true}\n"
    work = kr + "        work:\n" + entry
    assert validator.is_valid(as_json(VALID_CONFIG.replace(kr, work, 1)))
    misspelt = work.replace("jql:", "jqll:")
    assert not validator.is_valid(as_json(VALID_CONFIG.replace(kr, misspelt, 1)))
    schema = config_json_schema(CONNECTORS)
    assert sorted(schema["$defs"]["work.fake_tracker"]["properties"]) == [
        "backlink",
        "connection",
        "jql",
        "schedule",
    ]


def test_x_keys_are_allowed(validator: jsonschema.Draft202012Validator) -> None:
    assert validator.is_valid(as_json("x-anchors: {a: 1}\n" + VALID_CONFIG))


def test_write_schema_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    write_schema(CONNECTORS, first)
    write_schema(dict(reversed(list(CONNECTORS.items()))), second)
    text = first.read_text(encoding="utf-8")
    assert text == second.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert json.loads(text) == config_json_schema(CONNECTORS)
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
