"""``ga4``: key-result numbers from Google Analytics 4 reports (service-account auth)."""

from connectors.ga4.models import DimensionFilter, GA4Connection, GA4Query
from connectors.ga4.source import GA4Source
from okrsync.sdk.connector import Connector, ImportedFactory


def sandbox_credentials() -> dict[str, str]:
    """The made-up service account the fake trusts (its key pair is made only when asked)."""
    from connectors.ga4.sandbox import sandbox_credentials as generated

    return generated()


connector = Connector(
    type="ga4",
    summary="GA4 report metrics over the cycle, batched per property (Data API v1beta)",
    connection_model=GA4Connection,
    implementation=GA4Source,
    fake=ImportedFactory("connectors.ga4.fake:ga4_app"),
    sandbox_credentials=sandbox_credentials,
)

__all__ = ["DimensionFilter", "GA4Connection", "GA4Query", "GA4Source", "connector"]
