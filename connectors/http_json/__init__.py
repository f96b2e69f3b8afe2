"""``http_json``: one number from any JSON API, through a JSONPath, with pagination."""

from connectors.http_json.fake import DEFAULT_TOKEN, analytics_app
from connectors.http_json.source import HttpJsonConnection, HttpJsonQuery, HttpJsonSource
from okrsync.sdk.connector import Connector

connector = Connector(
    type="http_json",
    summary="A number from any JSON API: JSONPath, aggregate over pages, cycle placeholders",
    connection_model=HttpJsonConnection,
    implementation=HttpJsonSource,
    fake=analytics_app,
    sandbox_credentials={"token": DEFAULT_TOKEN},
)

__all__ = ["HttpJsonConnection", "HttpJsonQuery", "HttpJsonSource", "connector"]
