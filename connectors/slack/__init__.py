"""``slack``: one living Block Kit message per key result (or objective) in a Slack channel."""

from connectors.slack.models import MessageRef, SlackConnection, SlackMirror
from connectors.slack.sink import SlackSink
from okrsync.sdk.connector import Connector, ImportedFactory


def sandbox_credentials() -> dict[str, str]:
    """What the fake accepts (imported from it only when asked)."""
    from connectors.slack.fake import BOT_TOKEN

    return {"token": BOT_TOKEN, "channel": "C0OKRS0001"}


connector = Connector(
    type="slack",
    summary="Post a key result's progress to a Slack channel once, then edit that message in place",
    connection_model=SlackConnection,
    implementation=SlackSink,
    fake=ImportedFactory("connectors.slack.fake:slack_app"),
    sandbox_credentials=sandbox_credentials,
)

__all__ = ["MessageRef", "SlackConnection", "SlackMirror", "SlackSink", "connector"]
