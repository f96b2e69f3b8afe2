"""``sql``: a scalar query on any database SQLAlchemy can reach."""

from connectors.sql.source import SqlConnection, SqlSource
from okrsync.sdk.connector import Connector

connector = Connector(
    type="sql",
    summary="A scalar SQL query on any SQLAlchemy URL; cycle dates bound as parameters",
    connection_model=SqlConnection,
    implementation=SqlSource,
)

__all__ = ["SqlConnection", "SqlSource", "connector"]
