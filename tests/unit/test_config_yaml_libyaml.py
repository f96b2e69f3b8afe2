"""libyaml reads a config exactly as the ruamel reader does: same values, types, lines and errors.

``read_yaml`` composes with libyaml and falls back on ``read_yaml_with_ruamel`` (the reader
okrsync always had) for what it cannot read exactly; every test here holds the two side by side,
and checks that ordinary configs really take the fast way.
"""

from __future__ import annotations

import gc
import io
import math
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver

from benchmarks.workload import generate
from okrsync.config import read_yaml, yaml_libyaml
from okrsync.config.yaml_source import MAX_NODES, read_yaml_with_ruamel
from okrsync.errors import ConfigErrors
from tests.unit.config_fixtures import VALID_CONFIG

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


def outcome(read: Any, text: str) -> Any:
    try:
        document = read(text, filename="c.yaml")
    except ConfigErrors as exc:
        return ("errors", [(e.file, e.line, e.key, e.message) for e in exc.errors])
    except (AssertionError, NotImplementedError) as exc:
        # ruamel's round-trip scanner trips over a few odd comment layouts (a bug of its own,
        # as old as okrsync's use of it); libyaml may read those texts
        return ("ruamel failed", type(exc).__name__)
    return ("document", typed(document.data), sorted(document.lines.items(), key=repr))


def assert_alike(text: str) -> Any:
    fast = outcome(read_yaml, text)
    slow = outcome(read_yaml_with_ruamel, text)
    if slow[0] == "ruamel failed" and fast[0] != slow[0]:
        return fast
    assert fast == slow
    return fast


def read_by_libyaml(text: str) -> tuple[Any, dict[Any, int]]:
    """The fast way alone: fails if it would have handed the text to ruamel."""
    node = yaml_libyaml.compose(text)
    assert node is not None
    lines: dict[Any, int] = {(): 1}
    return yaml_libyaml.Builder(lines, MAX_NODES).build(node), lines


def test_libyaml_is_installed() -> None:
    # without it everything still works, at the old speed: this keeps CI from losing it unseen
    assert yaml_libyaml.available()


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_every_corpus_file_reads_alike(path: Path) -> None:
    assert_alike(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "text",
    [
        VALID_CONFIG,
        generate(60, date(2026, 11, 1)).yaml,
        *(p.read_text(encoding="utf-8") for p in (REPO / "config/examples").glob("*.yaml")),
    ],
)
def test_valid_configs_take_the_libyaml_way(text: str) -> None:
    data, lines = read_by_libyaml(text)
    reference = read_yaml_with_ruamel(text)
    assert typed(data) == typed(reference.data)
    assert lines == reference.lines


@pytest.mark.parametrize(
    ("scalar", "value"),
    [
        # YAML 1.1 (PyYAML's own resolver) reads these as booleans; ruamel's YAML 1.2 as text
        ("on", "on"),
        ("off", "off"),
        ("yes", "yes"),
        ("No", "No"),
        ("y", "y"),
        ("n", "n"),
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
        ("<<", "<<"),
        ("=", "="),
        ("'on'", "on"),
        ('"017"', "017"),
        ("! 12", 12),
        ('! "12"', 12),
    ],
)
def test_scalars_keep_their_yaml_1_2_meaning(scalar: str, value: Any) -> None:
    text = f"a: {scalar}\n"
    assert assert_alike(text)[1] == typed({"a": value})
    assert typed(read_by_libyaml(text)[0]) == typed({"a": value})


@pytest.mark.parametrize(
    ("key", "name"),
    [("on", "on"), ("True", "true"), ("~", "null"), ("017", "17"), ("1e3", "1000.0"), ("1", "1")],
)
def test_keys_are_named_as_before(key: str, name: str) -> None:
    text = f"{key}: x\n"
    assert assert_alike(text)[1] == typed({name: "x"})
    assert read_by_libyaml(text)[0] == {name: "x"}


NUMBERISH = st.text(alphabet="0123456789_.-+eExXobBafFinNtTrRuUlLsS~:<=", max_size=8)


@settings(max_examples=400, deadline=None)
@given(NUMBERISH)
def test_plain_scalars_resolve_as_ruamel_resolves_them(text: str) -> None:
    tag = str(VersionedResolver(version=(1, 2)).resolve(ScalarNode, text, (True, False)))
    try:
        value = yaml_libyaml.plain_scalar(text)
    except yaml_libyaml.NotExact:
        assert tag.endswith(("int", "float"))  # only numbers ruamel cannot build are left to it
        return
    kind = tag.rsplit(":", 1)[1]
    if kind == "bool":
        assert isinstance(value, bool)
    elif kind == "null":
        assert value is None
    elif kind == "int":
        assert type(value) is int
    elif kind == "float":
        assert type(value) is float
    else:  # str, and timestamps, merge and value tags, all built as the text itself here
        assert value == text


@settings(max_examples=300, deadline=None)
@given(NUMBERISH)
def test_plain_scalar_values_are_ruamels(text: str) -> None:
    assert_alike(f"- {text}\n- {text}: x\n")


YAML_BITS = st.sampled_from(
    [
        *("a", "b", ": ", ":", "\n", "  ", "- ", "{", "}", "[", "]", ", ", "&a ", "*a", "<<: "),
        *("!tag ", "! ", "!!str ", "'", '"', "#", "? ", "|\n", ">-\n", "a: |\n", "---\n", "...\n"),
        *("\t", "\r\n", "\r", "1", "0", "-", "_", ".", "e", "x", "0x", "0o", "inf", "nan", "true"),
        *("on", "~", "2026-10-01", "1:20", "%YAML 1.1\n", "%", "\ufeff", "\x85", "\\", "=", " "),
        *("\u00e9", "\x00", "\x7f", "    x\n", "\n  ", "'k':", '"k":', "*a:", "&a:", ":x", "|#c"),
        *("|2", ">+", "?", "@", "`", "!", "http://x", "a:b", "\n ", "\n    ", " #c"),
    ]
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(YAML_BITS, max_size=30).map("".join))
def test_yaml_ish_text_reads_alike(text: str) -> None:
    assert_alike(text)


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=6) | st.integers() | st.booleans(), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.sampled_from([None, True, False]), st.booleans())
def test_dumped_documents_read_alike(data: Any, flow: bool | None, shared: bool) -> None:
    if shared:  # the same object twice: the dump writes an anchor and an alias
        data = {"first": data, "second": data, "list": [data]}
    writer = YAML(typ="rt", pure=True)
    writer.default_flow_style = flow
    stream = io.StringIO()
    writer.dump(data, stream)
    assert_alike(stream.getvalue())


MERGES = [
    # own keys win over merged ones; the first mapping merged in wins; merged keys get no line
    "b: &b {x: 1, y: 2}\nc:\n  y: 3\n  <<: *b\n  z: 4\n",
    "b: &b {x: 1}\nd: &d {x: 2, w: 5}\nc: {<<: [*b, *d], v: 0}\n",
    "b: &b {x: 1}\nd: &d {<<: *b, y: 2}\nc:\n  <<: *d\n  z: 3\n",
    # a mapping made only of merged keys (the ruamel reader used to fail on it)
    "b: &b {x: 1}\nc: {<<: *b}\n",
    "b: &b\n  x:\n    deep: 1\nc:\n  <<: *b\n",
]


@pytest.mark.parametrize("text", MERGES)
def test_merge_keys_read_alike_by_libyaml(text: str) -> None:
    result = assert_alike(text)
    assert result[0] == "document"
    data, lines = read_by_libyaml(text)
    assert typed(data) == result[1]
    assert sorted(lines.items(), key=repr) == result[2]


def test_a_mapping_of_merged_keys_only_has_the_lines_of_its_source() -> None:
    doc = read_yaml("b: &b\n  x:\n    deep: 1\nc:\n  <<: *b\n")
    assert doc.data == {"b": {"x": {"deep": 1}}, "c": {"x": {"deep": 1}}}
    assert doc.line(("c", "x")) == 4  # a merged key has no line of its own: its mapping's
    assert doc.line(("c", "x", "deep")) == 3  # below it, the lines of the anchored mapping


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb:\tx\n",  # a tab: ruamel refuses some that libyaml accepts
        'a: "tab\there"\n',
        "a: x\nb: \ufeffy\n",  # a byte order mark that is not at the start
        "\ufeff%YAML 1.1\n---\na: on\n",
        "%YAML 1.1\n---\na: on\nb: 017\n",  # YAML 1.1 for ruamel: True and 15
        "a: !!int '3'\n",  # explicit tags
        "a: !custom hello\n",
        "a: !\n",  # an empty scalar tagged ``!``: null for ruamel, '' for libyaml
        "a: &a [*a]\n",  # refers to itself
        "1: a\n1.0: b\n",  # keys equal once built
        "<<: 1\n",  # merging a scalar
        "<<: {a: 1}\n<<: {b: 1}\n",  # two merge keys
        "? [a]\n: b\n",  # a key that is a list
        "a: ._\n",  # looks like a float, is not one
        "a: -_\n",  # looks like an int, and made ruamel fail on an index
        "just text\n",
        "a: 1\n---\nb: 2\n",
        "a: 1\n...\n...\n",  # a second, empty document for ruamel, none for libyaml
        "a: &x b\nc: {*x: 1}\n",  # ruamel's alias is named 'x:'
        "a: ['b':x]\n",  # a mapping in a flow sequence for libyaml, an error for ruamel
        'a: ["b"\n  :x]\n',
        "a: >-\n \n  more: indented\n",  # ruamel refuses a block scalar starting so
        "a: |\r\n \r\n  more\r\n",
        "a: [1, 2\n",
        "a: \x85\n",
        "",
        "# only a comment\n",
    ],
)
def test_what_libyaml_cannot_read_exactly_is_read_by_ruamel(text: str) -> None:
    node = yaml_libyaml.compose(text)
    if node is not None:
        with pytest.raises(yaml_libyaml.NotExact):
            yaml_libyaml.Builder({}, MAX_NODES).build(node)
    assert_alike(text)


def test_yaml_1_1_directive_keeps_its_meaning() -> None:
    assert read_yaml("%YAML 1.1\n---\na: on\nb: 017\n").data == {"a": True, "b": 15}


def test_number_lookalikes_are_config_errors_not_crashes() -> None:
    for text in ("a: -_\n", "a: 0x_\n", "a: ._\n"):
        with pytest.raises(ConfigErrors) as caught:
            read_yaml(text, filename="c.yaml")
        assert caught.value.errors[0].message.startswith("this is not valid YAML")


def test_deep_nesting_is_left_to_ruamel() -> None:
    text = "".join(f"{'  ' * depth}k{depth}:\n" for depth in range(150)) + "  " * 150 + "v: 1\n"
    node = yaml_libyaml.compose(text)
    assert node is not None
    with pytest.raises(yaml_libyaml.NotExact):
        yaml_libyaml.Builder({}, MAX_NODES).build(node)
    assert_alike(text)


BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 7)
)


def test_alias_bombs_are_refused_by_the_libyaml_way() -> None:
    node = yaml_libyaml.compose(BOMB)
    assert node is not None
    with pytest.raises(yaml_libyaml.TooManyValues):
        yaml_libyaml.Builder({}, MAX_NODES).build(node)
    assert "expands to more than" in assert_alike(BOMB)[1][0][3]


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        ("z: 1\nz: 2\n", "duplicate key 'z'"),  # repeated keys are reported before the size
        ("z: ._\n", "could not convert string to float"),  # and so is what ruamel cannot build
        ("q: {<<: {k: ._}, k: 1}\n", "could not convert string to float"),  # even unused
    ],
)
def test_what_ruamel_reports_first_wins_over_the_size(tail: str, message: str) -> None:
    errors = assert_alike(BOMB + tail)[1]
    assert len(errors) == 1
    assert message in errors[0][3]


@pytest.mark.parametrize(
    ("text", "readable"),
    [
        ("a: 1\nb: 2\na: 3\n", True),
        ("q: {<<: {k: 1, k: 2}}\n", True),  # in a merged mapping: ruamel's constructor says so
        ("q: {<<: {k: 1, 'k': 2}}\n", True),
        ("q: [{a: 1, b: 2, 'a': 3}]\n", True),
        ("a: !!str 1\na: 2\n", False),  # an explicit tag: ruamel reads it, then reports
        ("a: 1\nb: ._\na: 2\n", False),  # a scalar ruamel cannot build: all left to ruamel
    ],
)
def test_repeated_keys_are_seen_while_building(text: str, readable: bool) -> None:
    node = yaml_libyaml.compose(text)
    assert node is not None
    builder = yaml_libyaml.Builder({}, MAX_NODES)
    with pytest.raises(yaml_libyaml.RepeatedKey):
        builder.build(node)
    assert builder.readable_but_for_repeated_keys(node) is readable
    assert assert_alike(text)[0] == "errors"


def test_without_libyaml_ruamel_reads_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_libyaml, "_C_LOADER", None)  # PyYAML built without libyaml
    assert not yaml_libyaml.available()
    assert yaml_libyaml.compose("a: 1\n") is None
    doc = read_yaml("a: on\nb:\n  - 017\n")
    assert doc.data == {"a": "on", "b": [17]}
    assert doc.line(("b", 0)) == 3


def test_the_garbage_collector_is_left_as_it_was() -> None:
    assert gc.isenabled()
    read_yaml("a: 1\n")
    with pytest.raises(ConfigErrors):
        read_yaml("a: 1\na: 2\n")
    assert gc.isenabled()
    with yaml_libyaml.collector_paused():  # two reads at once share one pause
        with yaml_libyaml.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        read_yaml("a: 1\n")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_value_below_its_keys_comment_reads() -> None:
    # ruamel's round-trip scanner fails on this layout (NotImplementedError "overlap in
    # comment"); read by libyaml, it is an ordinary config
    text = "title: # what the objective is\n  Revenue\n\nnext: 1\n"
    assert outcome(read_yaml_with_ruamel, text) == ("ruamel failed", "NotImplementedError")
    doc = read_yaml(text)
    assert doc.data == {"title": "Revenue", "next": 1}
    assert (doc.line(("title",)), doc.line(("next",))) == (1, 4)
