"""Finding connectors: only through the ``okrsync.connectors`` entry-point group.

Built-in connectors come in through the very same door as a third-party package, so nothing in
the core can grow a dependency on a vendor. A plugin that fails to import is recorded as a load
error and reported by ``okrsync connectors``; it never takes the daemon down.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from okrsync.sdk.connector import Connector

GROUP = "okrsync.connectors"


@dataclass(frozen=True)
class PluginLoadError:
    name: str
    target: str
    error: str


@dataclass(frozen=True)
class Registry:
    connectors: Mapping[str, Connector]
    errors: tuple[PluginLoadError, ...] = field(default=())


def load_registry(points: Iterable[EntryPoint] | None = None) -> Registry:
    """Load every connector plugin; collect (never raise) the failures."""
    found: dict[str, Connector] = {}
    errors: list[PluginLoadError] = []
    for point in points if points is not None else entry_points(group=GROUP):
        try:
            loaded = point.load()
        except Exception as exc:  # a broken plugin must not break the daemon
            errors.append(PluginLoadError(point.name, point.value, f"{type(exc).__name__}: {exc}"))
            continue
        if not isinstance(loaded, Connector):
            errors.append(
                PluginLoadError(point.name, point.value, "entry point is not an okrsync Connector")
            )
            continue
        if loaded.type != point.name:
            errors.append(
                PluginLoadError(
                    point.name,
                    point.value,
                    f"entry point name {point.name!r} differs from connector type {loaded.type!r}",
                )
            )
            continue
        found[loaded.type] = loaded
    return Registry(dict(sorted(found.items())), tuple(errors))
