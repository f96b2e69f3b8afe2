"""Reading YAML into plain Python values while remembering which line every key came from.

The rest of the config package works on plain ``dict``/``list``/scalars (easy to validate and to
type), and asks :class:`YamlDocument` for the line of a key path only when it has something to
say about it.

One reader: PyYAML's composer (libyaml's C parser, which PyYAML's wheels carry; its pure-Python
twin otherwise) builds the node tree, and this module builds the values from it, with the line of
every key. Values are read the YAML 1.2 way whatever the parser's own resolver would say (``on``,
``yes`` and ``no`` are text, ``017`` is 17, ``0o17`` is 15); dates stay text, so that the config's
readers name the line of an impossible one; ``<<`` merge keys are followed. Two guards: a key
written twice in a mapping is an error (PyYAML would keep the last without a word), and so is a
document that aliases expand past :func:`value_limit` values ("billion laughs"). Chosen by
measurement over ruamel's round-trip reader, which read the 10,000 key result config in 99 s
against 1.8 s (``benchmarks.config_load``, run on a loaded machine).
"""

from __future__ import annotations

import gc
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from okrsync.errors import ConfigError, ConfigErrors

KeyPath = tuple[str | int, ...]
"""Where a value sits in the document: mapping keys and list indexes, outermost first."""

MAX_NODES = 200_000  # aliases can make a small file expand enormously ("billion laughs")
MAX_DEPTH = 50  # far deeper than any config; also what stops an alias used inside itself

# libyaml's composer when PyYAML was built with it (its wheels are), else the pure-Python one:
# both call ``self.resolve`` for every node without a tag of its own.
_LOADER: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
_PLAIN = "okrsync:plain"  # the tag this module's resolver gives a plain scalar
_TEXT = "okrsync:text"  # and a quoted or block one
_COLLECTION = "okrsync:collection"
_YAML_TAG = "tag:yaml.org,2002:"
# YAML 1.2 plain scalars: a scalar whose first character is not one of these is text.
_SPECIAL_FIRST = frozenset("-+.0123456789tTfFnN~")
_CONSTANTS: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("~", "null", "Null", "NULL"), None),
}
_FLOAT = re.compile(
    r"[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)"
    r"|\.[0-9_]+(?:[eE][-+][0-9]+)?|\.(?:inf|Inf|INF))|\.(?:nan|NaN|NAN)"
)
_INT = re.compile(r"[-+]?(?:0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|[0-9_]+)")
_RADIX = {"0b": 2, "0o": 8, "0x": 16}
_ALIAS = re.compile(r"\*([^\s,\[\]{}]+)")


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


def read_yaml(text: str, *, filename: str = "<config>") -> YamlDocument:
    """Parse ``text``; every failure becomes a :class:`ConfigErrors` naming file and line."""
    with collector_paused():
        return _read(text, filename)  # its node tree is freed before the collector is back


def _read(text: str, filename: str) -> YamlDocument:
    root = _compose(text, filename)
    if root is None:
        raise _fail(filename, "the file is empty; a config starts with `version: 1`", 1)
    builder = _Builder(value_limit(text))
    try:
        data = builder.build(root)
    except (_Unreadable, _TooManyValues) as exc:
        builder.look_at_every_node(root)  # repeated keys anywhere are reported first
        builder.raise_duplicates(filename)
        if isinstance(exc, _Unreadable):
            raise _fail(filename, exc.message, exc.line) from None
        raise _fail(filename, _too_big(builder.limit), None) from None
    builder.raise_duplicates(filename)
    return YamlDocument(data=data, lines=builder.lines)


def value_limit(text: str) -> int:
    """How many values a text may hold: without aliases every value takes at least a character,
    so a big config is never refused, while a small text cannot expand past ``MAX_NODES``."""
    return max(MAX_NODES, len(text))


def plain_scalar(text: str) -> Any:
    """The value of a plain scalar as YAML 1.2 reads it, timestamps left as text."""
    if not text or text[0] not in _SPECIAL_FIRST:
        return text or None
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    if _FLOAT.fullmatch(text):
        return _float(text)
    if _INT.fullmatch(text):
        return _int(text)
    return text  # a timestamp, or text starting with a digit


def key_text(key: Any) -> str:
    """How the config names a key that YAML built as a number, boolean or null."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


class _CollectorPause:
    """Composing makes three objects per node (the node and its start and end marks), alive until
    the read ends and in no reference cycle; the cyclic garbage collector would walk them again
    and again for nothing, which doubles the time a large config takes. Reads in several threads
    share one pause, and the collector is left as the first found it once the last is done."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.readers = 0
        self.was_enabled = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self.lock:
            if self.readers == 0:
                self.was_enabled = gc.isenabled()
                gc.disable()
            self.readers += 1
        try:
            yield
        finally:
            with self.lock:
                self.readers -= 1
                if self.readers == 0 and self.was_enabled:
                    gc.enable()


collector_paused = _CollectorPause()
"""``with collector_paused():`` around composing and building a large tree."""


def _fail(filename: str, message: str, line: int | None) -> ConfigErrors:
    return ConfigErrors([ConfigError(message, file=filename, line=line)])


def _too_big(limit: int) -> str:
    return (
        f"the document expands to more than {limit} values (through aliases); "
        "that is far more than any okrsync config needs"
    )


def _compose(text: str, filename: str) -> Node | None:
    loader = _LOADER(text)
    loader.resolve = _resolve
    try:
        node: Node | None = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _fail(filename, _marked_message(exc, text), _marked_line(exc)) from None
    except ReaderError as exc:
        raise _fail(
            filename,
            f"the file contains a character YAML does not allow ({exc.reason})",
            _line_at(text, exc.position),
        ) from None
    except yaml.YAMLError as exc:
        raise _fail(filename, f"this is not valid YAML: {exc}", None) from None
    except RecursionError:
        raise _fail(filename, "the YAML is nested too deeply to read", None) from None
    finally:
        loader.dispose()
    return node


def _resolve(kind: type[Node], value: str | None, implicit: Any) -> str:
    if kind is ScalarNode:
        return _PLAIN if implicit[0] else _TEXT
    return _COLLECTION


def _line_at(text: str, position: int) -> int:
    """The line of a reader's position: libyaml counts bytes of UTF-8, PyYAML characters."""
    if _LOADER is getattr(yaml, "CSafeLoader", None):
        return text.encode("utf-8", "surrogatepass")[: max(position, 0)].count(b"\n") + 1
    return text[: max(position, 0)].count("\n") + 1


def _marked_line(exc: yaml.MarkedYAMLError) -> int | None:
    mark = exc.problem_mark or exc.context_mark
    return None if mark is None else int(mark.line) + 1


def _marked_message(exc: yaml.MarkedYAMLError, text: str) -> str:
    problem = str(exc.problem or "").strip()
    # libyaml leaves out what PyYAML's pure-Python parser names: the character, the alias
    at = _text_at(text, exc.problem_mark)
    if problem == "found character that cannot start any token" and at:
        problem = f"found character {at[0]!r} that cannot start any token"
    named = _ALIAS.match(at)
    if problem == "found undefined alias" and named:
        problem += f" {named.group(1)!r}"
    context = str(exc.context).strip() if exc.context else ""
    if context and exc.context_mark is not None and exc.problem_mark is not None:
        started = int(exc.context_mark.line) + 1
        if started != int(exc.problem_mark.line) + 1:
            context += f" that starts on line {started}"
    parts = [p for p in (context, problem) if p]
    return "this is not valid YAML: " + ("; ".join(parts) or "invalid YAML")


def _text_at(text: str, mark: yaml.Mark | None) -> str:
    """The rest of the line at a parser's mark (its line and column count characters)."""
    if mark is None:
        return ""
    lines = text.splitlines()
    return lines[mark.line][mark.column :] if mark.line < len(lines) else ""


def _float(text: str) -> float:
    digits = text.replace("_", "").lower()
    sign = -1 if digits[0] == "-" else 1
    if digits[0] in "+-":
        digits = digits[1:]
    if digits == ".inf":
        return sign * math.inf
    if digits == ".nan":
        return math.nan
    return sign * float(digits)


def _int(text: str) -> int:
    digits = text.replace("_", "")
    sign = -1 if digits[0] == "-" else 1
    if digits[0] in "+-":
        digits = digits[1:]
    radix = _RADIX.get(digits[:2])
    if radix is not None:
        return sign * int(digits[2:], radix)
    return sign * int(digits)


def _line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _Unreadable(Exception):
    """A node this reader cannot make a value of: the message and the node's line."""

    def __init__(self, message: str, node: Node) -> None:
        super().__init__(message)
        self.message = f"this is not valid YAML: {message}"
        self.line = _line_of(node)


class _TooManyValues(Exception):
    """The document expands (through aliases) to more values than allowed."""


_Entry = tuple[str, Node, int | None]
"""One key of a mapping: its name, its value's node, its line (``None`` when merged with ``<<``)."""


class _Builder:
    """Plain values and key lines from a composed tree, in one walk, path by path: an alias gives
    a copy at each place it is used, and every value built counts against the limit. Repeated
    keys are collected (each mapping is looked at once, on the first path that reaches it)."""

    def __init__(self, limit: int) -> None:
        self.lines: dict[KeyPath, int] = {(): 1}
        self.limit = limit
        self.count = 0
        self.entries: dict[int, list[_Entry]] = {}
        self.building: set[int] = set()
        self.duplicates: list[tuple[KeyPath, int, int]] = []

    def build(self, root: Node) -> Any:
        return self._convert(root, (), 0)

    def raise_duplicates(self, filename: str) -> None:
        if self.duplicates:
            raise ConfigErrors(
                [
                    ConfigError(
                        f"duplicate key {path[-1]!r} (first defined on line {first}); "
                        "YAML keeps only one of them, so remove or rename the other",
                        file=filename,
                        line=line,
                        key=format_path(path),
                    )
                    for path, line, first in self.duplicates
                ]
            )

    def look_at_every_node(self, root: Node) -> None:
        """Every mapping's keys and every scalar, once each, building nothing; stops quietly at
        the first node that cannot be read (the caller reports that one)."""
        seen: set[int] = set()
        stack: list[tuple[Node, KeyPath]] = [(root, ())]
        try:
            while stack:
                node, path = stack.pop()
                if id(node) in seen:
                    continue
                seen.add(id(node))
                if isinstance(node, MappingNode):
                    stack.extend(
                        (value, (*path, name)) for name, value, _ in self._entries_of(node, path)
                    )
                elif isinstance(node, SequenceNode):
                    stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
                else:
                    self._scalar(node)
        except _Unreadable:
            return

    def _convert(self, node: Node, path: KeyPath, depth: int) -> Any:
        self.count += 1
        if self.count > self.limit:
            raise _TooManyValues
        tag = node.tag
        if tag is _TEXT:
            return node.value
        if tag is _PLAIN:
            value = node.value
            if not value or value[0] not in _SPECIAL_FIRST:  # text, most of a config: at once
                return value or None
            return self._plain(node)
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if depth >= MAX_DEPTH:
            raise _Unreadable("nested too deeply (or an alias is used inside itself)", node)
        if isinstance(node, MappingNode):
            out: dict[str, Any] = {}
            lines = self.lines
            for name, value_node, line in self._entries_of(node, path):
                child = (*path, name)
                if line is not None:
                    lines[child] = line
                out[name] = self._convert(value_node, child, depth + 1)
            return out
        items: list[Any] = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            self.lines[child] = item.start_mark.line + 1
            items.append(self._convert(item, child, depth + 1))
        return items

    def _scalar(self, node: Node) -> Any:
        tag = node.tag
        if tag is _PLAIN:
            return self._plain(node)
        if tag is _TEXT or not tag.startswith(_YAML_TAG) or tag == f"{_YAML_TAG}str":
            return node.value  # a tag of the user's own (``!thing``) means nothing here
        return self._plain(node)  # ``!!int 3`` and the like: read as the plain scalar

    def _plain(self, node: Node) -> Any:
        try:
            return plain_scalar(node.value)
        except (ValueError, IndexError):
            raise _Unreadable(f"cannot read {node.value!r} as a number", node) from None

    def _entries_of(self, node: Node, path: KeyPath) -> list[_Entry]:
        ident = id(node)
        found = self.entries.get(ident)
        if found is None:
            if ident in self.building:
                raise _Unreadable("a mapping merged into itself", node)
            self.building.add(ident)
            try:
                found = self.entries[ident] = self._entries(node, path)
            finally:
                self.building.discard(ident)
        return found

    def _entries(self, node: Node, path: KeyPath) -> list[_Entry]:
        table: dict[str, tuple[Node, int | None]] = {}
        first_line: dict[str, int] = {}
        merged: list[Node] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise _Unreadable("a key must be a single value, not a list or mapping", key_node)
            line = key_node.start_mark.line + 1
            tag, name = key_node.tag, key_node.value
            if tag is _TEXT or (tag is _PLAIN and name and name[0] not in _SPECIAL_FIRST):
                pass  # the key as written, as most are
            elif tag is _PLAIN and name == "<<":
                pass
            else:
                try:
                    name = key_text(self._scalar(key_node))
                except ValueError:  # an int too long to write in decimal
                    raise _Unreadable("a key too long to name", key_node) from None
            if name in first_line:
                self.duplicates.append(((*path, name), line, first_line[name]))
                continue
            first_line[name] = line
            if name == "<<" and key_node.tag is _PLAIN:
                merged = self._merge_sources(value_node)
            else:
                table[name] = (value_node, line)
        for source in merged:  # the first mapping merged in wins, and keys of its own win over all
            for name, value_node, _ in self._entries_of(source, path):
                if name not in table:
                    table[name] = (value_node, None)
        return [(name, *rest) for name, rest in table.items()]

    def _merge_sources(self, value_node: Node) -> list[Node]:
        if isinstance(value_node, MappingNode):
            return [value_node]
        if isinstance(value_node, SequenceNode) and all(
            isinstance(item, MappingNode) for item in value_node.value
        ):
            return list(value_node.value)
        raise _Unreadable("`<<` merges a mapping or a list of mappings", value_node)
