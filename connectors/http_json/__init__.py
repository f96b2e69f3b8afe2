"""``http_json``: one number from any JSON API, through a JSONPath, with pagination."""

from connectors.http_json.source import HttpJsonConnection, HttpJsonQuery, HttpJsonSource
from okrsync.sdk.connector import Connector, ImportedFactory


def sandbox_credentials() -> dict[str, str]:
    """What the fake accepts (imported from it only when asked)."""
    from connectors.http_json.fake import DEFAULT_TOKEN

    return {"token": DEFAULT_TOKEN}


connector = Connector(
    type="http_json",
    summary="A number from any JSON API: JSONPath, aggregate over pages, cycle placeholders",
    connection_model=HttpJsonConnection,
    implementation=HttpJsonSource,
    fake=ImportedFactory("connectors.http_json.fake:analytics_app"),
    sandbox_credentials=sandbox_credentials,
)

__all__ = ["HttpJsonConnection", "HttpJsonQuery", "HttpJsonSource", "connector"]
