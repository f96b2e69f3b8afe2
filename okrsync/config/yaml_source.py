"""Reading YAML into plain Python values while remembering which line every key came from.

The rest of the config package works on plain ``dict``/``list``/scalars (easy to validate and to
type), and asks :class:`YamlDocument` for the line of a key path only when it has something to
say about it. Round-trip loading is used because it is the ruamel mode that keeps positions.

ruamel's parser is pure Python and slow on large configs, so a document is first composed by
libyaml (:mod:`.yaml_libyaml`), which builds the same values and lines; what that module cannot
read exactly as ruamel does (syntax errors included, so that their messages stay ruamel's) is
read by ruamel here, as is everything when PyYAML was built without libyaml.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from okrsync.config import yaml_libyaml
from okrsync.errors import ConfigError, ConfigErrors

KeyPath = tuple[str | int, ...]
"""Where a value sits in the document: mapping keys and list indexes, outermost first."""

MAX_NODES = 200_000  # aliases can make a small file expand enormously ("billion laughs")


def format_path(path: KeyPath) -> str:
    """``("objectives", 0, "key_results", 1)`` → ``objectives[0].key_results[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass
class YamlDocument:
    """A parsed file: its plain data and the 1-based line of every key path in it."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, path: KeyPath) -> int:
        """The line of ``path``, or of its nearest ancestor that exists in the file."""
        while path:
            found = self.lines.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return self.lines.get((), 1)


class _DatesAsText(RoundTripConstructor):
    """Leave ``2026-10-01`` as text: the config's readers turn it into a date and, when it is
    impossible (``2026-13-01``), say so with the file, line and key like any other bad value."""

    def construct_yaml_timestamp(self, node: Any, values: Any = None) -> Any:
        return self.construct_scalar(node)


_DatesAsText.add_constructor("tag:yaml.org,2002:timestamp", _DatesAsText.construct_yaml_timestamp)


def _yaml() -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.Constructor = _DatesAsText
    return yaml


def read_yaml(text: str, *, filename: str = "<config>") -> YamlDocument:
    """Parse ``text``; every failure becomes a :class:`ConfigErrors` naming file and line."""
    with yaml_libyaml.collector_paused():  # the tree is freed before the collector is back
        document = _read_with_libyaml(text, filename)
    if document is not None:
        return document
    return read_yaml_with_ruamel(text, filename=filename)


def _fail(filename: str, message: str, line: int | None) -> ConfigErrors:
    return ConfigErrors([ConfigError(message, file=filename, line=line)])


def value_limit(text: str) -> int:
    """How many values a text may hold: without aliases every value takes at least a character,
    so a big config is never refused, while a small text cannot expand past ``MAX_NODES``."""
    return max(MAX_NODES, len(text))


def _too_big(limit: int) -> str:
    return (
        f"the document expands to more than {limit} values (through aliases); "
        "that is far more than any okrsync config needs"
    )


def _read_with_libyaml(text: str, filename: str) -> YamlDocument | None:
    """The document as libyaml reads it, or ``None`` when only ruamel can read it exactly."""
    node = yaml_libyaml.compose(text)
    if node is None:
        return None
    document = YamlDocument(data=None, lines={(): 1})
    builder = yaml_libyaml.Builder(document.lines, value_limit(text))
    try:
        document.data = builder.build(node)
    except yaml_libyaml.RepeatedKey:
        if builder.readable_but_for_repeated_keys(node):
            _check_duplicate_keys(node, filename)
        return None  # or repeated where ruamel's constructor sees it (merged in): its message
    except yaml_libyaml.NotExact:
        return None
    except yaml_libyaml.TooManyValues:
        _check_duplicate_keys(node, filename)  # repeated keys are reported first, as ever
        raise _fail(filename, _too_big(value_limit(text)), None) from None
    return document


def _check_duplicate_keys(node: Any, filename: str) -> None:
    duplicates = list(_duplicate_keys(node, ()))
    if duplicates:
        raise ConfigErrors(
            [
                ConfigError(
                    f"duplicate key {path[-1]!r} (first defined on line {first}); "
                    "YAML keeps only one of them, so remove or rename the other",
                    file=filename,
                    line=line,
                    key=format_path(path),
                )
                for path, line, first in duplicates
            ]
        )


def read_yaml_with_ruamel(text: str, *, filename: str = "<config>") -> YamlDocument:
    """:func:`read_yaml` by ruamel alone: slower, and the reference for what a document means."""

    def fail(message: str, line: int | None) -> ConfigErrors:
        return _fail(filename, message, line)

    yaml = _yaml()
    try:
        node = yaml.compose(text)
    except MarkedYAMLError as exc:
        raise fail(_marked_message(exc), _marked_line(exc)) from None
    except ReaderError as exc:
        line = text[: max(exc.position, 0)].count("\n") + 1
        raise fail(
            f"the file contains a character YAML does not allow ({exc.reason})", line
        ) from None
    except YAMLError as exc:
        raise fail(f"this is not valid YAML: {exc}", None) from None
    except RecursionError:
        raise fail("the YAML is nested too deeply to read", None) from None

    if node is None:
        raise fail("the file is empty; a config starts with `version: 1`", 1)

    _check_duplicate_keys(node, filename)

    try:
        loaded = _yaml().load(text)
    except MarkedYAMLError as exc:
        raise fail(_marked_message(exc), _marked_line(exc)) from None
    except RecursionError:
        raise fail("the YAML is nested too deeply to read", None) from None
    except (YAMLError, ValueError, TypeError, OverflowError, IndexError) as exc:
        # e.g. ``._`` looks like a number to YAML, which then cannot build it (``-_`` even makes
        # ruamel fail on an index)
        raise fail(f"this is not valid YAML: {exc}", None) from None

    document = YamlDocument(data=None, lines={(): 1})
    converter = _Converter(document.lines, value_limit(text))
    try:
        document.data = converter.convert(loaded, ())
    except _TooBig:
        raise fail(_too_big(converter.limit), None) from None
    except ValueError as exc:  # an int key too long to write in decimal (``0x`` + 4,000 digits)
        raise fail(f"this is not valid YAML: {exc}", None) from None
    except RecursionError:
        raise fail(
            "the YAML is nested too deeply (or refers to itself through an alias)", None
        ) from None
    return document


def _marked_line(exc: MarkedYAMLError) -> int | None:
    mark = exc.problem_mark or exc.context_mark
    return None if mark is None else int(mark.line) + 1


def _marked_message(exc: MarkedYAMLError) -> str:
    context = str(exc.context).strip() if exc.context else ""
    if context and exc.context_mark is not None and exc.problem_mark is not None:
        started = int(exc.context_mark.line) + 1
        if started != int(exc.problem_mark.line) + 1:
            context += f" that starts on line {started}"
    parts = [p for p in (context, str(exc.problem or "").strip()) if p]
    return "this is not valid YAML: " + ("; ".join(parts) or "invalid YAML")


def _duplicate_keys(node: Any, path: KeyPath) -> Iterator[tuple[KeyPath, int, int]]:
    """Every repeated key in a mapping: (path of the repeat, its line, line of the first).

    Works on a tree composed by ruamel or by libyaml (PyYAML): both name their nodes' kinds in
    ``node.id``. PyYAML keeps the last of two equal keys without a word, so this check is what
    reports them."""
    seen_nodes: set[int] = set()
    stack: list[tuple[Any, KeyPath]] = [(node, path)]
    while stack:
        current, where = stack.pop()
        if id(current) in seen_nodes:  # aliases point at the same node: check it once
            continue
        seen_nodes.add(id(current))
        if current.id == "mapping":
            first_line: dict[str, int] = {}
            for key_node, value_node in current.value:
                if key_node.id == "scalar" and key_node.value != "<<":
                    key = str(key_node.value)
                    line = int(key_node.start_mark.line) + 1
                    if key in first_line:
                        yield (*where, key), line, first_line[key]
                    else:
                        first_line[key] = line
                    stack.append((value_node, (*where, key)))
        elif current.id == "sequence":
            for index, item in enumerate(current.value):
                stack.append((item, (*where, index)))


class _TooBig(Exception):
    pass


class _Converter:
    """Round-trip values → plain values, recording lines as it goes."""

    def __init__(self, lines: dict[KeyPath, int], limit: int) -> None:
        self.lines = lines
        self.limit = limit
        self.count = 0

    def convert(self, value: Any, path: KeyPath) -> Any:
        self.count += 1
        if self.count > self.limit:
            raise _TooBig
        if isinstance(value, CommentedMap):
            out: dict[str, Any] = {}
            for key, item in value.items():
                name = _key_text(key)
                child = (*path, name)
                line = _position(value, "key", key)
                if line is not None:
                    self.lines[child] = line
                out[name] = self.convert(item, child)
            return out
        if isinstance(value, CommentedSeq):
            items: list[Any] = []
            for index, item in enumerate(value):
                child = (*path, index)
                line = _position(value, "item", index)
                if line is not None:
                    self.lines[child] = line
                items.append(self.convert(item, child))
            return items
        return _scalar(value)


def _position(container: CommentedMap | CommentedSeq, kind: str, key: Any) -> int | None:
    try:
        found = container.lc.key(key) if kind == "key" else container.lc.item(key)
    except (KeyError, IndexError, TypeError, AttributeError):
        return None  # e.g. a key merged in with ``<<: *anchor`` has no position of its own here
    if found is None:  # a mapping whose keys all come from ``<<: *anchor`` has no positions
        return None
    return int(found[0]) + 1


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return str(key)
    scalar = _scalar(key)
    if isinstance(scalar, bool):
        return "true" if scalar else "false"
    if scalar is None:
        return "null"
    if isinstance(scalar, date):
        return scalar.isoformat()
    return str(scalar)


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, ScalarBoolean):  # an anchored boolean: an int subclass in ruamel
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, datetime):
        return datetime.fromisoformat(value.isoformat()) if type(value) is not datetime else value
    if isinstance(value, date):
        return date(value.year, value.month, value.day)
    if isinstance(value, TaggedScalar):  # an unknown ``!tag``: keep the text, the tag means nothing
        return str(value.value)
    return str(value)
