"""Reading YAML with lines."""

from __future__ import annotations

import pytest

from okrsync.config import format_path, read_yaml, yaml_libyaml, yaml_source
from okrsync.config.yaml_source import read_yaml_with_ruamel
from okrsync.errors import ConfigErrors


def test_lines_of_keys_and_items() -> None:
    doc = read_yaml("a: 1\nb:\n  - x: 1\n    y: 2\n  - {z: 3}\nc: 2026-10-01\nd: 0.1\n")
    # dates stay text here: the config's readers parse them and name the line of a bad one
    assert doc.data == {"a": 1, "b": [{"x": 1, "y": 2}, {"z": 3}], "c": "2026-10-01", "d": 0.1}
    assert doc.line(("a",)) == 1
    assert doc.line(("b", 0)) == 3
    assert doc.line(("b", 0, "y")) == 4
    assert doc.line(("b", 1, "z")) == 5
    assert doc.line(("b", 1, "missing")) == 5  # falls back to the nearest ancestor
    assert doc.line(()) == 1


def test_format_path() -> None:
    assert format_path(("objectives", 0, "key_results", 1, "target")) == (
        "objectives[0].key_results[1].target"
    )
    assert format_path(()) == ""


def test_all_duplicate_keys_are_reported() -> None:
    with pytest.raises(ConfigErrors) as caught:
        read_yaml("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", filename="f.yaml")
    found = [(e.line, e.key) for e in caught.value.errors]
    assert found == [(5, "a"), (4, "b.c")] or sorted(found) == [(4, "b.c"), (5, "a")]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", [(5, "a"), (4, "b.c")]),
        ("- {x: 1, y: 2, x: 3}\n", [(1, "[0].x")]),
        ("a: 1\n'a': 2\n", [(2, "a")]),  # quoted or plain, the same key
        # an aliased mapping is checked once, on the last path that uses it
        ("s: &s {k: 1, k: 2}\nt: *s\nu: [*s]\n", [(1, "u[0].k")]),
    ],
)
def test_duplicate_keys_are_found_although_libyaml_keeps_the_last(
    text: str, found: list[tuple[int, str]]
) -> None:
    # PyYAML (libyaml) silently keeps the last of two equal keys: read_yaml checks the node tree
    assert yaml_libyaml.compose(text) is not None
    with pytest.raises(ConfigErrors) as caught:
        read_yaml(text, filename="f.yaml")
    errors = caught.value.errors
    assert [(e.line, e.key) for e in errors] == found
    assert all(e.message.startswith("duplicate key ") for e in errors)
    with pytest.raises(ConfigErrors) as by_ruamel:
        read_yaml_with_ruamel(text, filename="f.yaml")
    assert [e.render() for e in by_ruamel.value.errors] == [e.render() for e in errors]


def test_yaml_1_1_booleans_and_octals_stay_yaml_1_2() -> None:
    # what PyYAML's own resolver would make True, False, 15 and 80; ruamel never did
    doc = read_yaml("a: on\nb: no\nc: yes\nd: 017\ne: 1:20\nf: true\ng: 0o17\nh: 1e3\n")
    assert doc.data == {
        "a": "on",
        "b": "no",
        "c": "yes",
        "d": 17,
        "e": "1:20",
        "f": True,
        "g": 15,
        "h": 1000.0,
    }
    assert [type(doc.data[k]) for k in "dfh"] == [int, bool, float]


@pytest.mark.parametrize(
    ("text", "line"),
    [("a: [1, 2\nb: 3\n", 2), ("a: b: c\n", 1), ("a:\n\t- 1\n", 2)],
)
def test_syntax_errors_have_lines(text: str, line: int | None) -> None:
    with pytest.raises(ConfigErrors) as caught:
        read_yaml(text)
    assert caught.value.errors[0].line == line
    assert "not valid YAML" in caught.value.errors[0].message


def test_alias_bombs_are_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    with pytest.raises(ConfigErrors) as caught:
        read_yaml("\n".join(lines) + "\n")
    assert "expands to more than" in str(caught.value)


def test_a_big_config_without_aliases_is_not_taken_for_a_bomb(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More values than the alias limit, each written out, read by both readers (the limit is
    lowered so the slow reader stays quick; at the real one this is ~20,000 key results)."""
    monkeypatch.setattr(yaml_source, "MAX_NODES", 1_000)
    count = 1_500
    for reader in (read_yaml, read_yaml_with_ruamel):
        document = reader("values: [" + ", ".join(["1"] * count) + "]\n")
        assert len(document.data["values"]) == count
        with pytest.raises(ConfigErrors, match="expands to more than 1000 values"):
            reader(
                "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: [" + ", ".join(["*a"] * 90) + "]"
            )


def test_odd_scalars_become_plain_values() -> None:
    doc = read_yaml("a: &t true\nb: *t\nc: !custom hello\n1: one\nnull: two\n")
    assert doc.data == {"a": True, "b": True, "c": "hello", "1": "one", "null": "two"}
