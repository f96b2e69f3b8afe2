"""``linear``: issue counts and estimate sums in, one edited project update per key result out."""

from connectors.linear.models import LinearConnection, LinearProjectUpdateMirror, LinearQuery
from connectors.linear.sink import LinearSink
from connectors.linear.source import LinearSource
from connectors.linear.webhooks import verify_webhook
from connectors.linear.work import LinearWorkTracker
from okrsync.sdk.connector import Connector, ImportedFactory


class LinearConnector(LinearSource, LinearSink, LinearWorkTracker):
    """One Linear connection that is a source (issues), a sink (project updates) and a work
    tracker (the issues behind a key result, an attachment as backlink)."""


connector = Connector(
    type="linear",
    summary="Linear: issue counts / estimate sums by team, project, label, state; project updates",
    connection_model=LinearConnection,
    implementation=LinearConnector,
    verify_webhook=verify_webhook,
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
