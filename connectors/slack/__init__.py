"""``slack``: one living Block Kit message per key result (or objective) in a Slack channel."""

from connectors.slack.fake import BOT_TOKEN, slack_app
from connectors.slack.models import MessageRef, SlackConnection, SlackMirror
from connectors.slack.sink import SlackSink
from okrsync.sdk.connector import Connector

connector = Connector(
    type="slack",
    summary="Post a key result's progress to a Slack channel once, then edit that message in place",
    connection_model=SlackConnection,
    implementation=SlackSink,
    fake=slack_app,
    sandbox_credentials={"token": BOT_TOKEN, "channel": "C0OKRS0001"},
)

__all__ = ["MessageRef", "SlackConnection", "SlackMirror", "SlackSink", "connector"]
