"""The YAML fields of a ``slack`` connection and of a Slack mirror, and the delivery reference."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from connectors.slack.limits import DEFAULT_DISTRIBUTION, Distribution
from okrsync.sdk.connector import ConnectionConfig, MirrorSpec

# Conversation ids: C… public, G… private/legacy group, D… direct message (Slack never promised a
# length, but they are upper-case letters and digits).
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")  # the spec's defs_channel pattern
MESSAGE_TS = re.compile(r"^\d{10}\.\d{6}$")


class SlackConnection(ConnectionConfig):
    type: Literal["slack"] = "slack"
    token: SecretStr = Field(description="Bot token (xoxb-…), sent as 'Authorization: Bearer'.")
    base_url: str = Field(
        default="https://slack.com/api/", description="Web API base URL (tests point it at a fake)."
    )
    timeout: float = Field(default=10.0, gt=0, description="Seconds one API call may take.")
    distribution: Distribution = Field(
        default=DEFAULT_DISTRIBUTION,
        description="How the Slack app is distributed, which sets conversations.history's "
        "limits: internal (created and installed in your own workspace, what a self-hosted "
        "okrsync is) and marketplace (approved for the Slack Marketplace) get Tier 3, 50 a "
        "minute and pages of 100; distributed (commercially distributed outside the "
        "Marketplace) gets 1 a minute and pages of at most 15.",
    )
    history_limit: int = Field(
        default=200,
        ge=1,
        le=1000,
        description="How many recent channel messages are searched for this mirror's own message "
        "when its reference was lost (crash safety).",
    )

    signing_secret: SecretStr | None = Field(
        default=None,
        description="The Slack app's signing secret (Basic Information → App Credentials): "
        "with it, /hooks/<connection>/commands and /hooks/<connection>/interactions take the "
        "/okr check-in command and its modal; without it they answer 404.",
    )
    check_in_url: str | None = Field(
        default=None,
        description="Link of the 'Check in' button in reminders (e.g. the dashboard's URL); "
        "without it reminders tell people to type /okr.",
    )

    @field_validator("token")
    @classmethod
    def _looks_like_a_token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("xox"):
            raise ValueError("token must be a Slack bot token such as xoxb-…")
        return value


class SlackMirror(MirrorSpec):
    channel: str = Field(
        min_length=1,
        description="Channel id (C0123456789, preferred) or name (#okrs) the bot is a member of.",
    )
    link: str | None = Field(default=None, description="Optional URL shown under the message.")
    thread_alerts: bool = Field(
        default=False,
        description="Reply in the message's thread when progress crosses 25/50/75/100% or the "
        "status turns at_risk/off_track.",
    )

    @property
    def channel_id(self) -> str | None:
        """The channel id when the mirror names one, else None (a name must be resolved)."""
        return self.channel if CHANNEL_ID.match(self.channel) else None

    @property
    def channel_name(self) -> str:
        return self.channel.removeprefix("#")


@dataclass(frozen=True)
class MessageRef:
    """One living Slack message: the channel *id* Slack answered with, and the message ``ts``.

    Stored as ``C0123456789:1700000000.000100`` (the pair is the message's identity).
    """

    channel: str
    ts: str

    def __str__(self) -> str:
        return f"{self.channel}:{self.ts}"

    @classmethod
    def parse(cls, ref: str) -> MessageRef | None:
        """The reference, or None when it is not one of ours (then we look for the message)."""
        channel, _, ts = ref.partition(":")
        if not channel or not MESSAGE_TS.match(ts):
            return None
        return cls(channel, ts)
