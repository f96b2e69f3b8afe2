"""Live connections for one process: created once from the config, closed once at the end."""

from __future__ import annotations

from typing import Any, Protocol

from okrsync.config import Config
from okrsync.errors import PluginError
from okrsync.sdk.connector import Connector, ConnectorBase, Sink, Source
from okrsync.sdk.ledger import BudgetLedger


class ClosableLedger(BudgetLedger, Protocol):
    """A ledger the process opened (on the store) and closes when its connections close."""

    async def aclose(self) -> None: ...


class Connections:
    """One instance (and so one HTTP client) per configured connection, created on first use.

    ``ledger``, when given, keeps every connection's call budgets (their pace and the vendor's
    holds) where the other replicas on the same store see them; without one each connection
    paces itself in memory, which is exact for a single node. :meth:`aclose` closes it.
    """

    def __init__(
        self,
        config: Config,
        connectors: dict[str, Connector],
        *,
        ledger: ClosableLedger | None = None,
    ) -> None:
        self.config = config
        self.connectors = connectors
        self.ledger = ledger
        self._live: dict[str, ConnectorBase[Any]] = {}

    def get(self, name: str) -> ConnectorBase[Any]:
        live = self._live.get(name)
        if live is None:
            kind = self.config.connection_types[name]
            connector = self.connectors.get(kind)
            if connector is None:
                raise PluginError(f"connection {name!r}: connector type {kind!r} is not installed")
            live = connector.create(name, self.config.connections[name], ledger=self.ledger)
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
        if self.ledger is not None:
            await self.ledger.aclose()
