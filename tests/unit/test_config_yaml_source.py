"""Reading YAML with lines."""

from __future__ import annotations

import pytest

from okrsync.config import format_path, read_yaml
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


def test_odd_scalars_become_plain_values() -> None:
    doc = read_yaml("a: &t true\nb: *t\nc: !custom hello\n1: one\nnull: two\n")
    assert doc.data == {"a": True, "b": True, "c": "hello", "1": "one", "null": "two"}
