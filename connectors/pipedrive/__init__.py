"""``pipedrive``: deal counts and value sums (a summary in one call, else the v2 listing)."""

from connectors.pipedrive.fake import make_fake, pipedrive_app
from connectors.pipedrive.models import DealWindow, PipedriveConnection, PipedriveQuery
from connectors.pipedrive.source import PipedriveSource
from okrsync.sdk.connector import Connector

connector = Connector(
    type="pipedrive",
    summary="Pipedrive deals: counts and value sums by status, pipeline, stage, owner, won time",
    connection_model=PipedriveConnection,
    implementation=PipedriveSource,
    fake=make_fake,
)

__all__ = [
    "DealWindow",
    "PipedriveConnection",
    "PipedriveQuery",
    "PipedriveSource",
    "connector",
    "pipedrive_app",
]
