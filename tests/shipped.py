"""The connectors okrsync ships, as opposed to every installed plugin (CI installs the example
plugin, examples/okrsync-sentry, beside them)."""

from __future__ import annotations

from collections.abc import Mapping

from okrsync.plugins import load_registry
from okrsync.sdk.connector import Connector


def is_shipped(connector: Connector) -> bool:
    return connector.implementation.__module__.startswith("connectors.")


def shipped_connectors() -> Mapping[str, Connector]:
    return {n: c for n, c in load_registry().connectors.items() if is_shipped(c)}
