"""``${VAR}`` resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from okrsync.config import ReferenceResolver


def resolve(value: object, environ: dict[str, str], secrets_dir: Path = Path("/nope")) -> object:
    result = ReferenceResolver(environ, secrets_dir).resolve({"section": value})
    assert not result.problems, result.problems
    return result.data["section"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "alpha"),
        ("x-${A}-y", "x-alpha-y"),
        ("${A}${A}", "alphaalpha"),
        ("${MISSING:-fallback}", "fallback"),
        ("${MISSING:-}", ""),
        ("${A:-fallback}", "alpha"),
        ("$${A}", "${A}"),
        ("cost: $5", "cost: $5"),
        ("$$", "$$"),
        ("${EMPTY}", ""),
    ],
)
def test_substitution(text: str, expected: str) -> None:
    assert resolve(text, {"A": "alpha", "EMPTY": ""}) == expected


def test_nested_structures_and_non_strings_pass_through() -> None:
    value = {"a": ["${A}", 1, None, {"b": "${A}"}], "n": 1.5}
    assert resolve(value, {"A": "x"}) == {"a": ["x", 1, None, {"b": "x"}], "n": 1.5}


def test_secrets_dir_is_second_and_trailing_newline_is_stripped(tmp_path: Path) -> None:
    (tmp_path / "TOKEN").write_text("from-file\n", encoding="utf-8")
    assert resolve("${TOKEN}", {}, tmp_path) == "from-file"
    assert resolve("${TOKEN}", {"TOKEN": "from-env"}, tmp_path) == "from-env"


def test_only_connections_values_are_secrets() -> None:
    resolver = ReferenceResolver({"A": "alpha", "B": "beta"}, Path("/nope"))
    result = resolver.resolve({"connections": {"c": {"url": "${A}"}}, "metrics": {"m": "${B}"}})
    assert result.secrets == ["alpha"]
    assert ("connections", "c", "url") in result.referenced


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${NOPE}", "environment variable NOPE is not set (nor is /nope/NOPE)"),
        ("${not valid}", "is not a valid reference"),
        ("${}", "is not a valid reference"),
        ("abc ${UNCLOSED", "a reference is not closed"),
    ],
)
def test_problems(text: str, message: str) -> None:
    result = ReferenceResolver({}, Path("/nope")).resolve({"k": text})
    assert [path for path, _ in result.problems] == [("k",)]
    assert message in result.problems[0][1]
