"""What ``plan`` shows of a changed definition: its fields before and after, line by line. Pure.

A metric's definition is its connection, its query text and its schedule: editing any of them
changes what the store's values mean, so a review step must show it. Multi-line values (SQL)
are compared line by line, so a one-word edit in a long query is one ``-``/``+`` pair.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping

Definition = Mapping[str, str | None]
"""One definition's fields by name (``connection``, ``query``, ``schedule`` …), as text."""


def field_diff(before: Definition, after: Definition) -> list[str]:
    """``- old`` / ``+ new`` lines for every field whose text differs, in the fields' order."""
    lines: list[str] = []
    for name in dict.fromkeys([*before, *after]):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        old_lines = [] if old is None else old.splitlines() or [""]
        new_lines = [] if new is None else new.splitlines() or [""]
        lines.append(f"{name}:")
        if len(old_lines) <= 1 and len(new_lines) <= 1:
            lines.extend(f"- {line}" for line in old_lines)
            lines.extend(f"+ {line}" for line in new_lines)
            continue
        for line in difflib.ndiff(old_lines, new_lines):
            if line.startswith(("- ", "+ ")):
                lines.append(line)
    return lines


def compare(
    before: Mapping[str, Definition],
    after: Mapping[str, Definition],
    differ: Callable[[Definition, Definition], list[str]] = field_diff,
) -> tuple[list[str], dict[str, list[str]], list[str], int]:
    """Names added, changed (with their ``differ`` lines), removed, and how many are unchanged."""
    added = [name for name in after if name not in before]
    removed = [name for name in before if name not in after]
    changed: dict[str, list[str]] = {}
    unchanged = 0
    for name, definition in after.items():
        if name not in before:
            continue
        diff = differ(before[name], definition)
        if diff:
            changed[name] = diff
        else:
            unchanged += 1
    return added, changed, removed, unchanged
