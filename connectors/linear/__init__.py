"""``linear``: issue counts and estimate sums in, one edited project update per key result out."""

from connectors.linear.models import LinearConnection, LinearProjectUpdateMirror, LinearQuery
from connectors.linear.sink import LinearSink
from connectors.linear.source import LinearSource
from okrsync.sdk.connector import Connector, ImportedFactory


class LinearConnector(LinearSource, LinearSink):
    """One Linear connection that is both a source (issues) and a sink (project updates)."""


connector = Connector(
    type="linear",
    summary="Linear: issue counts / estimate sums by team, project, label, state; project updates",
    connection_model=LinearConnection,
    implementation=LinearConnector,
    fake=ImportedFactory("connectors.linear.fake:linear_app"),
)

__all__ = [
    "LinearConnection",
    "LinearConnector",
    "LinearProjectUpdateMirror",
    "LinearQuery",
    "LinearSink",
    "LinearSource",
    "connector",
]
