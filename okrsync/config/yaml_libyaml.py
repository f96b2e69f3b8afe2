"""Reading YAML with libyaml, PyYAML's C parser, giving exactly what the ruamel reader gives.

Reading a large config with ruamel's pure-Python parser costs seconds (about 3 s per thousand
key results); libyaml and this module read it some 35 times faster (``benchmarks.config_load``).
But the config means what ruamel made of it so far, and that must not change: YAML 1.2 scalars
(``on``, ``yes`` and ``no`` are text, ``017`` is 17, ``0o17`` is 15), dates kept as text, merge
keys, the line of every key. PyYAML resolves scalars the YAML 1.1 way, so its resolver is
replaced by one that only records whether a scalar was plain, and values are built here from the
raw text.

This module reads only what it can read exactly like the ruamel reader. Whenever it cannot
promise that (a syntax error, whose message is ruamel's; grammar the two parsers read
differently; an explicit ``!!tag``; a ``%YAML`` directive; keys that collide once built; a merge
that is not a mapping; a scalar ruamel cannot build; deep nesting or a self-referring alias),
:func:`compose` returns ``None`` or :meth:`Builder.build` raises :class:`NotExact`, and the
caller reads the text with ruamel. The differences were found by reading both parsers' sources
and by comparing the two readers on generated texts (``tests/unit/test_config_yaml_libyaml.py``).
"""

from __future__ import annotations

import gc
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import yaml
from yaml.nodes import Node, ScalarNode

if TYPE_CHECKING:
    from okrsync.config.yaml_source import KeyPath

# The tags this module's resolver gives nodes that carry no tag of their own; any other tag on a
# node was written in the document.
PLAIN = "okrsync:plain"  # a plain scalar (or one tagged with the non-specific ``!``)
TEXT = "okrsync:text"  # a quoted or block scalar
MAPPING = "okrsync:mapping"
SEQUENCE = "okrsync:sequence"

MAX_DEPTH = 50  # far deeper than any config; past it, ruamel's own recursion decides what happens

_C_LOADER: Any = getattr(yaml, "CSafeLoader", None)  # None when PyYAML was built without libyaml
# Texts left to ruamel: tabs (libyaml accepts a tab between tokens where ruamel refuses it), a
# byte order mark after the start (libyaml skips it, ruamel keeps it as text), characters the two
# may count lines differently around, directives (``%YAML 1.1`` switches ruamel to YAML 1.1
# scalars) and document end markers (ruamel sees a second document after ``...`` twice).
_LINE_STARTS_LEFT_TO_RUAMEL = ("%", "...")
_LEFT_TO_RUAMEL = (
    *("\t", "\x85", "\u2028", "\u2029"),
    *(newline + start for newline in "\n\r" for start in _LINE_STARTS_LEFT_TO_RUAMEL),
)
# Grammar the two read differently (each found by a search that starts on a plain character,
# which is fast):
# - an anchor or alias name followed by ``:`` (or ``?%@```): part of the name for ruamel, the end
#   of it for libyaml;
_ANCHOR_THEN_INDICATOR = (
    re.compile(r"&[0-9A-Za-z_-]+[?:%@`]"),
    re.compile(r"\*[0-9A-Za-z_-]+[?:%@`]"),
)
# - a ``:`` right after a quoted scalar in a flow sequence (``["a":1]``): a mapping for libyaml,
#   an error for ruamel (found as a ``:`` not followed by a space, then looked at backwards);
_COLON_THEN_TEXT = re.compile(r":[^ \r\n]")
# - a block scalar whose first line holds only spaces, fewer than a later one: ruamel refuses it
#   (found from the space that ends such a line);
# - a block scalar header with a comment right after it (``|#``): ruamel refuses that too.
_COMMENT_AFTER_INDICATORS = re.compile(r"[-+0-9]{0,2}#")

# YAML 1.2 plain scalars as ruamel resolves them (its resolver, 1.2 rules). A scalar whose first
# character is not one of these is text whatever follows.
_SPECIAL_FIRST = frozenset("-+.0123456789tTfFnN~<=!&*")
_CONSTANTS: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("~", "null", "Null", "NULL"), None),
}
# ``$`` (not ``\Z``) and ``match`` (not ``fullmatch``) as in ruamel: a scalar may end in "\n"
_FLOAT = re.compile(
    r"(?:[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)"
    r"|\.[0-9_]+(?:[eE][-+][0-9]+)?|\.(?:inf|Inf|INF))|\.(?:nan|NaN|NAN))$"
)
_INT = re.compile(r"[-+]?(?:0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|[0-9_]+)$")
_RADIX = {"0b": 2, "0o": 8, "0x": 16}


class NotExact(Exception):
    """This document needs ruamel to be read exactly as before."""


class RepeatedKey(Exception):
    """A mapping has two keys written alike; the caller finds and reports every such key."""


class TooManyValues(Exception):
    """The document expands (through aliases) to more values than the caller allows."""


def available() -> bool:
    """Whether libyaml is there to compose with."""
    return _C_LOADER is not None


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


def compose(text: str) -> Node | None:
    """The node tree of ``text`` composed by libyaml, with this module's tags on untagged nodes;
    ``None`` when libyaml is missing, cannot read the text, or the text is left to ruamel."""
    if _C_LOADER is None or not _for_libyaml(text):
        return None
    loader = _C_LOADER(text)
    loader.resolve = _resolve  # the C composer calls ``self.resolve`` for every untagged node
    try:
        node: Node | None = loader.get_single_node()
    except (yaml.YAMLError, UnicodeError, ValueError, RecursionError):
        return None  # ruamel reports it, in its own words
    finally:
        loader.dispose()
    return node


def _for_libyaml(text: str) -> bool:
    """Whether libyaml reads ``text`` as ruamel does, as far as the text alone can tell."""
    if text.startswith("\ufeff"):  # a byte order mark at the very start is no text for either
        text = text[1:]
    if text.startswith(_LINE_STARTS_LEFT_TO_RUAMEL) or "\ufeff" in text:
        return False
    if any(part in text for part in _LEFT_TO_RUAMEL):  # one fast scan each
        return False
    if any(pattern.search(text) for pattern in _ANCHOR_THEN_INDICATOR):
        return False
    for colon in _COLON_THEN_TEXT.finditer(text):
        end = colon.start()
        while end > 0 and text[end - 1] in " \r\n":
            end -= 1
        if end > 0 and text[end - 1] in "'\"":
            return False
    if any(_after_a_block_header(text, blank) for blank in _blank_lines(text)):
        return False
    return not any(_COMMENT_AFTER_INDICATORS.match(text, at + 1) for at in _block_indicators(text))


def _block_indicators(text: str) -> Iterator[int]:
    for indicator in "|>":
        found = text.find(indicator)
        while found >= 0:
            yield found
            found = text.find(indicator, found + 1)


def _line_start(text: str, end: int) -> int:
    return max(text.rfind("\n", 0, end), text.rfind("\r", 0, end)) + 1


def _blank_lines(text: str) -> Iterator[int]:
    """Where each line made of spaces only (one at least) starts."""
    for ending in (" \n", " \r"):
        found = text.find(ending)
        while found >= 0:
            start = _line_start(text, found)
            if not text[start:found].strip(" "):
                yield start
            found = text.find(ending, found + 1)


def _after_a_block_header(text: str, start: int) -> bool:
    if start == 0:
        return False
    end = start - 1  # the line break before the blank line, where the line before it ends
    if text.startswith("\r\n", end - 1):
        end -= 1
    previous = text[_line_start(text, end) : end]
    return "|" in previous or ">" in previous


def _resolve(kind: type[Node], value: str | None, implicit: Any) -> str:
    if kind is ScalarNode:
        # implicit[0] is true for a plain scalar and for one tagged ``!`` (ruamel resolves both
        # alike), implicit[1] for a quoted one. An empty scalar tagged ``!`` has neither, and is
        # null for ruamel: the tag no other node has leaves it to ruamel.
        if implicit[0]:
            return PLAIN
        return TEXT if implicit[1] else "okrsync:unsure"
    return MAPPING if kind is yaml.MappingNode else SEQUENCE


def plain_scalar(text: str) -> Any:
    """The value of a plain scalar, as ruamel's round-trip loader (YAML 1.2) builds it, with
    timestamps left as text; :class:`NotExact` where ruamel would fail or do something odd."""
    if not text:
        return None
    if text[0] not in _SPECIAL_FIRST:
        return text
    if text.endswith("\n") or text in ("!", "&", "*"):
        raise NotExact(text)  # only a quoted scalar tagged ``!`` gets here; not worth copying
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    try:
        if _FLOAT.match(text):
            return _float(text)
        if _INT.match(text):
            return _int(text)
    except (ValueError, IndexError):
        raise NotExact(text) from None  # e.g. ``._`` or ``-_``: ruamel's error is the message
    return text  # a timestamp, ``<<`` or ``=`` as a value, or just text starting with a digit


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
        if len(digits) == 2:
            raise ValueError(text)
        return sign * int(digits[2:], radix)
    if not digits:
        raise ValueError(text)
    return sign * int(digits)


def key_text(key: Any) -> str:
    """How the config names a key that YAML built as a number, boolean or null."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


Entry = tuple[Any, str, Node, int | None]
"""One key of a mapping: its value as built, its name, its value's node, its line (``None`` for a
key merged in with ``<<``)."""


class Builder:
    """Plain values and key lines from a composed tree, as the ruamel reader makes them.

    One walk, path by path: an alias gives a copy at each place it is used, and values are
    counted as the ruamel reader counts them (:class:`TooManyValues`). ruamel builds every node
    before it counts, so what it would fail on must win over the count: when the count runs out,
    and for what is merged with ``<<`` (which the walk only partly visits), every node is checked
    once more the way ruamel's constructor would see it.
    """

    def __init__(self, lines: dict[KeyPath, int], limit: int) -> None:
        self.lines = lines
        self.limit = limit
        self.count = 0
        self.entries: dict[int, list[Entry]] = {}
        self.building: set[int] = set()
        self.repeats_allowed = False

    def readable_but_for_repeated_keys(self, root: Node) -> bool:
        """After :class:`RepeatedKey`: whether the rest of the tree reads exactly (ruamel reports
        a syntax error libyaml let through, an explicit tag, … before repeated keys)."""
        self.repeats_allowed = True
        self.entries.clear()
        try:
            self._check(root, 0, set())
        except NotExact:
            return False
        return True

    def build(self, root: Node) -> Any:
        if root.tag is not MAPPING and root.tag is not SEQUENCE:
            # a config is a mapping; a text that is one scalar is an error either way, and block
            # scalars at the top level are where libyaml and ruamel read comments differently
            raise NotExact("a document that is a single scalar")
        try:
            return self._convert(root, (), 0)
        except TooManyValues:
            self._check(root, 0, set())
            raise

    def _convert(self, node: Node, path: KeyPath, depth: int) -> Any:
        self.count += 1
        if self.count > self.limit:
            raise TooManyValues
        tag = node.tag
        if tag is TEXT:
            return node.value
        if tag is PLAIN:
            return plain_scalar(node.value)
        if depth >= MAX_DEPTH:
            raise NotExact("deep nesting, or an alias used inside itself")
        if tag is MAPPING:
            out: dict[str, Any] = {}
            for _, name, value_node, line in self._entries_of(node):
                child = (*path, name)
                if line is not None:
                    self.lines[child] = line
                out[name] = self._convert(value_node, child, depth + 1)
            return out
        if tag is SEQUENCE:
            items: list[Any] = []
            for index, item in enumerate(node.value):
                child = (*path, index)
                self.lines[child] = int(item.start_mark.line) + 1
                items.append(self._convert(item, child, depth + 1))
            return items
        raise NotExact(f"explicit tag {tag}")

    def _entries_of(self, node: Node) -> list[Entry]:
        ident = id(node)
        found = self.entries.get(ident)
        if found is None:
            if ident in self.building:
                raise NotExact("a mapping merged into itself")
            self.building.add(ident)
            try:
                found = self.entries[ident] = self._entries(node)
            finally:
                self.building.discard(ident)
        return found

    def _entries(self, node: Node) -> list[Entry]:
        table: dict[Any, tuple[str, Node, int | None]] = {}
        written: set[str] = set()
        merged: list[Node] = []
        merge_keys = 0
        for key_node, value_node in node.value:
            tag = key_node.tag
            if tag is PLAIN and key_node.value == "<<":
                merge_keys += 1
                merged.extend(self._merge_sources(value_node))
                continue
            if tag is not TEXT and tag is not PLAIN:
                raise NotExact("a key that is a collection or has a tag")
            if key_node.value in written:
                if self.repeats_allowed:
                    continue
                raise RepeatedKey(key_node.value)
            written.add(key_node.value)
            key = key_node.value if tag is TEXT else plain_scalar(key_node.value)
            if key in table or (isinstance(key, float) and math.isnan(key)):
                raise NotExact(f"key {key!r} is there twice once built")
            try:
                name = key_text(key)
            except ValueError:  # an int key too long to write in decimal (``0x`` + 4,000 digits)
                raise NotExact("a key too long to name") from None
            table[key] = (name, value_node, int(key_node.start_mark.line) + 1)
        if merge_keys > 1:
            raise NotExact("more than one merge key")
        for source in merged:  # the first mapping merged in wins, and keys of its own win over all
            for key, name, value_node, _ in self._entries_of(source):
                if key not in table:
                    table[key] = (name, value_node, None)
        return [(key, *rest) for key, rest in table.items()]

    def _merge_sources(self, value_node: Node) -> list[Node]:
        self._check(value_node, 0, set())  # ruamel builds all of it, keys shadowed here too
        if value_node.tag is MAPPING:
            return [value_node]
        if value_node.tag is SEQUENCE and all(item.tag is MAPPING for item in value_node.value):
            return list(value_node.value)
        raise NotExact("merging something that is not a mapping")

    def _check(self, node: Node, depth: int, seen: set[int]) -> None:
        """Fail where ruamel's constructor would, building nothing: every node once."""
        if id(node) in seen:
            return
        seen.add(id(node))
        if depth > MAX_DEPTH:
            raise NotExact("deep nesting")
        tag = node.tag
        if tag is PLAIN:
            plain_scalar(node.value)
        elif tag is MAPPING:
            self._entries_of(node)  # keys, and what is merged
            for key_node, value_node in node.value:
                self._check(key_node, depth + 1, seen)
                self._check(value_node, depth + 1, seen)
        elif tag is SEQUENCE:
            for item in node.value:
                self._check(item, depth + 1, seen)
        elif tag is not TEXT:
            raise NotExact(f"explicit tag {tag}")
