"""``salesforce``: SOQL aggregates and report totals from a Salesforce org, within its quota."""

from connectors.salesforce.fake import CLIENT_ID, CLIENT_SECRET, salesforce_app
from connectors.salesforce.models import (
    ClientCredentials,
    JwtBearer,
    SalesforceConnection,
    SalesforceQuery,
)
from connectors.salesforce.source import SalesforceSource
from okrsync.sdk.connector import Connector

connector = Connector(
    type="salesforce",
    summary="Salesforce: SOQL aggregates (batched GROUP BY) and report totals, quota-aware",
    connection_model=SalesforceConnection,
    implementation=SalesforceSource,
    fake=salesforce_app,
    sandbox_credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
)

__all__ = [
    "ClientCredentials",
    "JwtBearer",
    "SalesforceConnection",
    "SalesforceQuery",
    "SalesforceSource",
    "connector",
]
