"""A list of entries under one key, each read on its own, none listed twice.

The work entries of a key result (or objective) and the mirrors of a key result (or an
objective's digest mirrors) are both read this way: every entry is checked (so one run reports
every problem), an entry whose key an earlier one has is a problem at its own path, and the list
stands only when every entry does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from okrsync.config.reporting import Reporter
from okrsync.config.yaml_source import KeyPath


class Keyed(Protocol):
    @property
    def key(self) -> str: ...


EntryT = TypeVar("EntryT", bound=Keyed)


def distinct_entries(
    read: Reporter,
    path: KeyPath,
    items: Sequence[Any],
    entry: Callable[[KeyPath, Any], EntryT | None],
    twice: str,
) -> tuple[EntryT, ...] | None:
    """Every item read by ``entry`` at ``(*path, index)``; ``twice`` is the problem reported at a
    repeated key. ``None`` when any item failed or repeated (its problem is reported)."""
    entries: list[EntryT] = []
    seen: set[str] = set()
    complete = True
    for index, item in enumerate(items):
        where = (*path, index)
        read_entry = entry(where, item)
        if read_entry is None:
            complete = False
        elif read_entry.key in seen:
            read.problem(where, twice)
            complete = False
        else:
            seen.add(read_entry.key)
            entries.append(read_entry)
    return tuple(entries) if complete else None
