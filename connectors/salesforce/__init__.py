"""``salesforce``: SOQL aggregates and report totals from a Salesforce org, within its quota."""

from connectors.salesforce.models import (
    ClientCredentials,
    JwtBearer,
    SalesforceConnection,
    SalesforceQuery,
)
from connectors.salesforce.source import SalesforceSource
from okrsync.sdk.connector import Connector, ImportedFactory


def sandbox_credentials() -> dict[str, str]:
    """What the fake accepts (imported from it only when asked)."""
    from connectors.salesforce.fake import CLIENT_ID, CLIENT_SECRET

    return {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


connector = Connector(
    type="salesforce",
    summary="Salesforce: SOQL aggregates (batched GROUP BY) and report totals, quota-aware",
    connection_model=SalesforceConnection,
    implementation=SalesforceSource,
    fake=ImportedFactory("connectors.salesforce.fake:salesforce_app"),
    sandbox_credentials=sandbox_credentials,
)

__all__ = [
    "ClientCredentials",
    "JwtBearer",
    "SalesforceConnection",
    "SalesforceQuery",
    "SalesforceSource",
    "connector",
]
