"""Live connections for one process: created once from the config, closed once at the end."""

from __future__ import annotations

from typing import Any

from okrsync.config import Config
from okrsync.errors import PluginError
from okrsync.sdk.connector import Connector, ConnectorBase, Sink, Source


class Connections:
    """One instance (and so one HTTP client) per configured connection, created on first use."""

    def __init__(self, config: Config, connectors: dict[str, Connector]) -> None:
        self.config = config
        self.connectors = connectors
        self._live: dict[str, ConnectorBase[Any]] = {}

    def get(self, name: str) -> ConnectorBase[Any]:
        live = self._live.get(name)
        if live is None:
            kind = self.config.connection_types[name]
            connector = self.connectors.get(kind)
            if connector is None:
                raise PluginError(f"connection {name!r}: connector type {kind!r} is not installed")
            live = connector.create(name, self.config.connections[name])
            self._live[name] = live
        return live

    def source(self, name: str) -> Source[Any, Any]:
        live = self.get(name)
        if not isinstance(live, Source):
            raise PluginError(f"connection {name!r} cannot be a source")
        return live

    def sink(self, name: str) -> Sink[Any, Any]:
        live = self.get(name)
        if not isinstance(live, Sink):
            raise PluginError(f"connection {name!r} cannot be a mirror")
        return live

    async def aclose(self) -> None:
        for live in self._live.values():
            await live.aclose()
        self._live.clear()
