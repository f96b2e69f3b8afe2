"""Reading YAML with lines: YAML 1.2 values, key lines, merge keys and the two guards (repeated
keys, alias bombs), by libyaml's composer and, where PyYAML lacks it, by its pure-Python one."""

from __future__ import annotations

import gc
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from okrsync.config import format_path, read_yaml, yaml_source
from okrsync.errors import ConfigErrors

REPO = Path(__file__).resolve().parents[2]
CORPUS = sorted(
    path
    for folder in ("tests/unit/broken_configs", "config/examples", "okrsync/examples")
    for path in (REPO / folder).glob("*.yaml")
)


def typed(value: Any) -> Any:
    """``value`` with every type spelled out: ``{"a": 1} == {"a": True}`` in Python."""
    if isinstance(value, dict):
        return ("dict", [(key, typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [typed(item) for item in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


def errors_of(text: str) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(ConfigErrors) as caught:
        read_yaml(text, filename="f.yaml")
    assert all(e.file == "f.yaml" for e in caught.value.errors)
    return [(e.line, e.key, e.message) for e in caught.value.errors]


def test_libyaml_is_installed() -> None:
    # without it everything still works, slower: this keeps CI from losing it unseen
    assert yaml_source._LOADER is yaml.CSafeLoader


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


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", [(5, "a"), (4, "b.c")]),
        ("- {x: 1, y: 2, x: 3}\n", [(1, "[0].x")]),
        ("a: 1\n'a': 2\n", [(2, "a")]),  # quoted or plain, the same key
        ("1: a\n01: b\n", [(2, "1")]),  # keys equal once read
        # an aliased mapping is looked at once, where it is written
        ("s: &s {k: 1, k: 2}\nt: *s\nu: [*s]\n", [(1, "s.k")]),
        ("q: {<<: {k: 1, k: 2}}\n", [(1, "q.k")]),  # in a merged mapping too
        ("<<: {a: 1}\n<<: {b: 1}\n", [(2, "<<")]),  # two merge keys
    ],
)
def test_every_duplicate_key_is_reported(text: str, found: list[tuple[int, str]]) -> None:
    # PyYAML silently keeps the last of two equal keys: the builder looks for them
    errors = errors_of(text)
    assert [(line, key) for line, key, _ in errors] == found
    assert all(message.startswith("duplicate key ") for _, _, message in errors)
    assert "first defined on line" in errors[0][2]


@pytest.mark.parametrize(
    ("scalar", "value"),
    [
        # YAML 1.1 (PyYAML's own resolver) reads these as booleans; YAML 1.2 as text
        ("on", "on"),
        ("off", "off"),
        ("yes", "yes"),
        ("No", "No"),
        ("y", "y"),
        ("true", True),
        ("True", True),
        ("FALSE", False),
        # YAML 1.1 reads 017 as octal 15, 08 as text, 1:20 as 80 (base 60) and 1e3 as text
        ("017", 17),
        ("08", 8),
        ("0o17", 15),
        ("0x1F", 31),
        ("0b101", 5),
        ("-1_000", -1000),
        ("+12", 12),
        ("1:20", "1:20"),
        ("1e3", 1000.0),
        ("1.5E-3", 0.0015),
        (".5", 0.5),
        ("1.", 1.0),
        ("-.inf", -math.inf),
        (".NaN", math.nan),
        ("-.nan", "-.nan"),
        ("~", None),
        ("Null", None),
        ("", None),
        # timestamps stay text: the config's readers parse them and can name a bad one's line
        ("2026-10-01", "2026-10-01"),
        ("2026-10-01 10:00:00", "2026-10-01 10:00:00"),
        ("2026-13-45", "2026-13-45"),
        ("=", "="),
        ("'on'", "on"),
        ('"017"', "017"),
        ("! 12", 12),
        ("!!str 12", "12"),
        ("!!int 12", 12),
        ("!custom hello", "hello"),  # a tag of the user's own means nothing
        ("|\n  two\n  lines", "two\nlines\n"),
    ],
)
def test_scalars_have_their_yaml_1_2_meaning(scalar: str, value: Any) -> None:
    assert typed(read_yaml(f"a: {scalar}\n").data) == typed({"a": value})


@pytest.mark.parametrize(
    ("key", "name"),
    [("on", "on"), ("True", "true"), ("~", "null"), ("017", "17"), ("1e3", "1000.0"), ("1", "1")],
)
def test_keys_read_as_values_are_named_as_text(key: str, name: str) -> None:
    assert read_yaml(f"{key}: x\n").data == {name: "x"}


@pytest.mark.parametrize(
    ("text", "data", "lines"),
    [
        # own keys win over merged ones; the first mapping merged in wins; merged keys: no line
        (
            "b: &b {x: 1, y: 2}\nc:\n  y: 3\n  <<: *b\n  z: 4\n",
            {"b": {"x": 1, "y": 2}, "c": {"y": 3, "z": 4, "x": 1}},
            {("c", "y"): 3, ("c", "z"): 5, ("c", "x"): 2},
        ),
        (
            "b: &b {x: 1}\nd: &d {x: 2, w: 5}\nc: {<<: [*b, *d], v: 0}\n",
            {"b": {"x": 1}, "d": {"x": 2, "w": 5}, "c": {"v": 0, "x": 1, "w": 5}},
            {("c", "v"): 3, ("c", "x"): 3},
        ),
        (
            "b: &b {x: 1}\nd: &d {<<: *b, y: 2}\nc:\n  <<: *d\n  z: 3\n",
            {"b": {"x": 1}, "d": {"y": 2, "x": 1}, "c": {"z": 3, "y": 2, "x": 1}},
            {("c", "z"): 5},
        ),
        (
            "b: &b\n  x:\n    deep: 1\nc:\n  <<: *b\n",
            {"b": {"x": {"deep": 1}}, "c": {"x": {"deep": 1}}},
            {("c", "x"): 4, ("c", "x", "deep"): 3},  # below a merged key: the anchor's lines
        ),
    ],
)
def test_merge_keys(text: str, data: Any, lines: dict[tuple[str, ...], int]) -> None:
    doc = read_yaml(text)
    assert typed(doc.data) == typed(data)
    assert {path: doc.line(path) for path in lines} == lines


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a: [1, 2\nb: 3\n", 2, "while parsing a flow sequence"),
        ("a: b: c\n", 1, "mapping values are not allowed"),
        ("a:\n\t- 1\n", 2, "found character '\\t' that cannot start any token"),
        ("a: 1\nb: 'open\n", 3, "found unexpected end of stream"),
        ("a: 1\n---\nb: 2\n", 2, "but found another document"),
        ("a: *nowhere\n", 1, "found undefined alias"),
        ("a: ._\n", 1, "cannot read '._' as a number"),
        ("x: 1\na: -_\n", 2, "cannot read '-_' as a number"),
        ("a: 0x_\n", 1, "cannot read '0x_' as a number"),
        ("<<: 1\n", 1, "`<<` merges a mapping or a list of mappings"),
        ("? [a]\n: b\n", 1, "a key must be a single value"),
        ("a: &a [*a]\n", 1, "an alias is used inside itself"),
        ("a: &a {<<: *a}\n", 1, "a mapping merged into itself"),
        ("a: \x01\n", 1, "a character YAML does not allow"),
        ("", 1, "the file is empty"),
        ("# only a comment\n", 1, "the file is empty"),
    ],
)
def test_what_cannot_be_read_is_an_error_with_a_line(text: str, line: int, message: str) -> None:
    [(found_line, key, found)] = errors_of(text)
    assert (found_line, key) == (line, None)
    assert message in found
    assert found.startswith(("this is not valid YAML", "the file", "the file contains"))


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    text = "".join(f"{'  ' * depth}k{depth}:\n" for depth in range(150)) + "  " * 150 + "v: 1\n"
    [(_, _, message)] = errors_of(text)
    assert "nested too deeply" in message


def test_odd_but_valid_texts_read() -> None:
    assert read_yaml("a: 1\nb:\tx\n").data == {"a": 1, "b": "x"}
    assert read_yaml("\ufeffa: on\n").data == {"a": "on"}
    assert read_yaml("%YAML 1.1\n---\na: on\nb: 017\n").data == {"a": "on", "b": 17}
    assert read_yaml("a: 1\n...\n").data == {"a": 1}
    assert read_yaml("just text\n").data == "just text"  # the loader says a config is a mapping
    # a value below its key's comment (ruamel's round-trip scanner failed on it)
    doc = read_yaml("title: # what the objective is\n  Revenue\n\nnext: 1\n")
    assert doc.data == {"title": "Revenue", "next": 1}
    assert (doc.line(("title",)), doc.line(("next",))) == (1, 4)


BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 7)
)


def test_alias_bombs_are_refused() -> None:
    [(line, _, message)] = errors_of(BOMB)
    assert line is None
    assert "expands to more than 200000 values" in message


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        ("z: 1\nz: 2\n", "duplicate key 'z'"),  # repeated keys are reported before the size
        ("q: {<<: {k: 1, k: 2}}\n", "duplicate key 'k'"),  # even where the walk had not been
    ],
)
def test_repeated_keys_win_over_the_size(tail: str, message: str) -> None:
    [(_, _, found)] = errors_of(BOMB + tail)
    assert message in found


def test_a_big_config_without_aliases_is_not_taken_for_a_bomb(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More values than the alias limit, each written out (the limit is lowered; at the real one
    this is ~20,000 key results)."""
    monkeypatch.setattr(yaml_source, "MAX_NODES", 1_000)
    count = 1_500
    document = read_yaml("values: [" + ", ".join(["1"] * count) + "]\n")
    assert len(document.data["values"]) == count
    with pytest.raises(ConfigErrors, match="expands to more than 1000 values"):
        read_yaml("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: [" + ", ".join(["*a"] * 90) + "]")


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_every_corpus_file_reads_alike_with_or_without_libyaml(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = path.read_text(encoding="utf-8")

    def outcome() -> Any:
        try:
            doc = read_yaml(text, filename="c.yaml")
        except ConfigErrors as exc:  # the two parsers word some syntax errors differently
            return [(e.line, e.key) for e in exc.errors]
        return typed(doc.data), doc.lines

    fast = outcome()
    monkeypatch.setattr(yaml_source, "_LOADER", yaml.SafeLoader)  # PyYAML without libyaml
    assert outcome() == fast


def test_the_garbage_collector_is_left_as_it_was() -> None:
    assert gc.isenabled()
    read_yaml("a: 1\n")
    with pytest.raises(ConfigErrors):
        read_yaml("a: 1\na: 2\n")
    assert gc.isenabled()
    with yaml_source.collector_paused():  # two reads at once share one pause
        with yaml_source.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        read_yaml("a: 1\n")
        assert not gc.isenabled()
    finally:
        gc.enable()


YAML_BITS = st.sampled_from(
    [
        *("a", "b", ": ", ":", "\n", "  ", "- ", "{", "}", "[", "]", ", ", "&a ", "*a", "<<: "),
        *("!tag ", "! ", "!!str ", "'", '"', "#", "? ", "|\n", ">-\n", "a: |\n", "---\n", "...\n"),
        *("\t", "\r\n", "\r", "1", "0", "-", "_", ".", "e", "x", "0x", "0o", "inf", "nan", "true"),
        *("on", "~", "2026-10-01", "1:20", "%YAML 1.1\n", "%", "\ufeff", "\x85", "\\", "=", " "),
        *("\u00e9", "\x00", "\x7f", "    x\n", "\n  ", "'k':", '"k":', "*a:", "&a:", ":x", "|#c"),
        *("|2", ">+", "?", "@", "`", "!", "http://x", "a:b", "\n ", "\n    ", " #c", "!!int "),
    ]
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(YAML_BITS, max_size=30).map("".join))
def test_any_text_reads_or_is_a_config_error(text: str) -> None:
    errors: list[str] = []
    try:
        read_yaml(text)
    except ConfigErrors as exc:
        errors = [e.message for e in exc.errors] or ["(no error listed)"]
    assert all(message and message != "(no error listed)" for message in errors)


# text without digits: PyYAML writes YAML 1.1, which leaves ``0E0`` unquoted (text there, a
# number in YAML 1.2); and without lone surrogates, which no UTF-8 file holds (PyYAML writes
# them as escapes that libyaml then refuses)
words = st.text(alphabet=st.characters(blacklist_categories=["Nd", "Cs"]), max_size=10)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | words
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(words, children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.sampled_from([None, True, False]))
def test_dumped_documents_read_back(data: Any, flow: bool | None) -> None:
    text = yaml.safe_dump(
        {"doc": data, "again": data}, default_flow_style=flow, sort_keys=False
    )  # an alias
    assert typed(read_yaml(text).data) == typed({"doc": data, "again": data})
