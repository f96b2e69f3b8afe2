"""``pipedrive``: deal counts and value sums (a summary in one call, else the v2 listing)."""

from typing import Any

from connectors.pipedrive.models import DealWindow, PipedriveConnection, PipedriveQuery
from connectors.pipedrive.source import PipedriveSource
from okrsync.sdk.connector import Connector, ImportedFactory

connector = Connector(
    type="pipedrive",
    summary="Pipedrive deals: counts and value sums by status, pipeline, stage, owner, won time",
    connection_model=PipedriveConnection,
    implementation=PipedriveSource,
    fake=ImportedFactory("connectors.pipedrive.fake:make_fake"),
)


def __getattr__(name: str) -> Any:
    """``pipedrive_app`` comes from the fake, imported only when asked for."""
    if name == "pipedrive_app":
        from connectors.pipedrive.fake import pipedrive_app

        return pipedrive_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DealWindow",
    "PipedriveConnection",
    "PipedriveQuery",
    "PipedriveSource",
    "connector",
    "pipedrive_app",
]
