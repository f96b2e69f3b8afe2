"""Finding connectors: only through the ``okrsync.connectors`` entry-point group.

Built-in connectors come in through the very same door as a third-party package, so nothing in
the core can grow a dependency on a vendor. A plugin is imported when its type is first asked for
(``registry.connectors["jira"]``), so a command pays only for the connectors its config uses
(issue 13: importing all of them cost more than the rest of ``okrsync validate``); going over the
whole mapping, or asking for ``errors``, imports them all. A plugin that fails to import is
recorded as a load error, reported by ``okrsync connectors``, and is not in the mapping; it never
takes the daemon down.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from okrsync.sdk.connector import Connector

GROUP = "okrsync.connectors"


@dataclass(frozen=True)
class PluginLoadError:
    name: str
    target: str
    error: str


class InstalledConnectors(Mapping[str, Connector]):
    """The connectors of some entry points by type, each plugin imported when first needed."""

    def __init__(self, points: Iterable[EntryPoint]) -> None:
        self._points: dict[str, list[EntryPoint]] = {}
        for point in points:
            self._points.setdefault(point.name, []).append(point)
        self._loaded: dict[str, Connector | None] = {}
        self._errors: dict[str, list[PluginLoadError]] = {}
        self._lock = threading.Lock()

    def _load(self, name: str) -> Connector | None:
        if name in self._loaded:  # asked once per metric: no lock once loaded
            return self._loaded[name]
        with self._lock:
            if name not in self._loaded:
                found: Connector | None = None
                errors: list[PluginLoadError] = []
                for point in self._points.get(name, ()):  # the last good one wins
                    loaded = _load_point(point)
                    if isinstance(loaded, PluginLoadError):
                        errors.append(loaded)
                    else:
                        found = loaded
                self._loaded[name], self._errors[name] = found, errors
            return self._loaded[name]

    def __getitem__(self, name: str) -> Connector:
        found = self._load(name) if name in self._points else None
        if found is None:
            raise KeyError(name)
        return found

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._points and self._load(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter([name for name in sorted(self._points) if self._load(name) is not None])

    def __len__(self) -> int:
        return len(list(iter(self)))

    @property
    def loaded(self) -> list[str]:
        """The types imported so far (whether they loaded or failed)."""
        return sorted(self._loaded)

    @property
    def errors(self) -> tuple[PluginLoadError, ...]:
        """Every plugin that failed to load (imports them all)."""
        for name in sorted(self._points):
            self._load(name)
        return tuple(error for name in sorted(self._points) for error in self._errors[name])


@dataclass(frozen=True)
class Registry:
    connectors: Mapping[str, Connector]
    load_errors: tuple[PluginLoadError, ...] = field(default=())

    @property
    def errors(self) -> tuple[PluginLoadError, ...]:
        found = self.connectors.errors if isinstance(self.connectors, InstalledConnectors) else ()
        return (*self.load_errors, *found)


def load_registry(points: Iterable[EntryPoint] | None = None) -> Registry:
    """The connector plugins of ``points`` (default: the installed ones), imported on demand;
    failures are collected, never raised."""
    chosen = points if points is not None else entry_points(group=GROUP)
    return Registry(InstalledConnectors(chosen))


def _load_point(point: EntryPoint) -> Connector | PluginLoadError:
    try:
        loaded = point.load()
    except Exception as exc:  # a broken plugin must not break the daemon
        return PluginLoadError(point.name, point.value, f"{type(exc).__name__}: {exc}")
    if not isinstance(loaded, Connector):
        return PluginLoadError(point.name, point.value, "entry point is not an okrsync Connector")
    if loaded.type != point.name:
        return PluginLoadError(
            point.name,
            point.value,
            f"entry point name {point.name!r} differs from connector type {loaded.type!r}",
        )
    return loaded
