"""``hubspot``: counts and sums over HubSpot CRM objects through the v3 search API."""

from connectors.hubspot.models import HubSpotConnection, HubSpotFilter, HubSpotQuery
from connectors.hubspot.source import HubSpotSource
from connectors.hubspot.webhooks import verify_webhook
from okrsync.sdk.connector import Connector, ImportedFactory


def sandbox_credentials() -> dict[str, str]:
    """What the fake accepts (imported from it only when asked)."""
    from connectors.hubspot.fake import DEFAULT_TOKEN

    return {"token": DEFAULT_TOKEN}


connector = Connector(
    type="hubspot",
    summary="Counts and sums over HubSpot deals, contacts and companies (CRM v3 search)",
    connection_model=HubSpotConnection,
    implementation=HubSpotSource,
    verify_webhook=verify_webhook,
    fake=ImportedFactory("connectors.hubspot.fake:hubspot_app"),
    sandbox_credentials=sandbox_credentials,
)

__all__ = ["HubSpotConnection", "HubSpotFilter", "HubSpotQuery", "HubSpotSource", "connector"]
