"""Slack's own Python client, pointed at the fake, works unchanged for the calls we use."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.metadata import Metadata

from connectors.slack.fake import BOT_TOKEN
from connectors.slack.tests.conftest import Slack

CHANNEL = "C0OKRS0001"


def test_webclient_posts_updates_and_reads_back_metadata(slack: Slack) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=slack.api)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Bookings* 37%"}}]
    metadata = Metadata(event_type="okrsync_state", event_payload={"id": "bookings"})
    posted = client.chat_postMessage(
        channel=CHANNEL, text="Bookings 37%", blocks=blocks, metadata=metadata
    )
    assert posted["ok"] is True
    ts = posted["ts"]
    assert posted["channel"] == CHANNEL

    updated = client.chat_update(channel=CHANNEL, ts=ts, text="Bookings 52%", blocks=blocks)
    assert updated["ok"] is True and updated["ts"] == ts

    history = client.conversations_history(
        channel=CHANNEL, latest=ts, inclusive=True, limit=1, include_all_metadata=True
    )
    (message,) = history["messages"]
    assert message["ts"] == ts and message["text"] == "Bookings 52%"
    assert message["metadata"]["event_type"] == "okrsync_state"
    assert message["metadata"]["event_payload"] == {"id": "bookings"}


def test_webclient_sees_slacks_errors(slack: Slack) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=slack.api)
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C0RANDOM01", text="hello")
    assert raised.value.response["error"] == "not_in_channel"
    with pytest.raises(SlackApiError) as bad_token:
        WebClient(token="xoxb-wrong", base_url=slack.api).auth_test()
    assert bad_token.value.response["error"] == "invalid_auth"
