"""``hubspot``: counts and sums over HubSpot CRM objects through the v3 search API."""

from connectors.hubspot.fake import DEFAULT_TOKEN, hubspot_app
from connectors.hubspot.models import HubSpotConnection, HubSpotFilter, HubSpotQuery
from connectors.hubspot.source import HubSpotSource
from okrsync.sdk.connector import Connector

connector = Connector(
    type="hubspot",
    summary="Counts and sums over HubSpot deals, contacts and companies (CRM v3 search)",
    connection_model=HubSpotConnection,
    implementation=HubSpotSource,
    fake=hubspot_app,
    sandbox_credentials={"token": DEFAULT_TOKEN},
)

__all__ = ["HubSpotConnection", "HubSpotFilter", "HubSpotQuery", "HubSpotSource", "connector"]
