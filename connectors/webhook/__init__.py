"""``webhook``: POST each key result update, signed, to a URL the team owns."""

from connectors.webhook.sink import WebhookConnection, WebhookMirror, WebhookSink
from okrsync.sdk.connector import Connector, ImportedFactory

connector = Connector(
    type="webhook",
    summary="POST key result updates as JSON, HMAC-signed, de-duplicated by Idempotency-Key",
    connection_model=WebhookConnection,
    implementation=WebhookSink,
    fake=ImportedFactory("connectors.webhook.receiver:receiver_app"),
)

__all__ = ["WebhookConnection", "WebhookMirror", "WebhookSink", "connector"]
