"""The YAML fields of a ``teams`` connection (a Workflows or incoming-webhook URL) and mirror."""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, SecretStr, field_validator

from okrsync.sdk.connector import ConnectionConfig, MirrorSpec

CardVersion = Literal["1.2", "1.3", "1.4", "1.5"]


class TeamsConnection(ConnectionConfig):
    type: Literal["teams"] = "teams"
    webhook_url: SecretStr = Field(
        description="The channel's Workflows URL ('When a Teams webhook request is received', "
        "…/triggers/manual/paths/invoke?…&sig=…) or a legacy incoming-webhook URL. "
        "A secret: whoever has it can post."
    )
    card_version: CardVersion = Field(
        default="1.4",
        description="Adaptive Card version; Workflows refuse cards above 1.4.",
    )
    timeout: float = Field(default=10.0, gt=0, description="Seconds one post may take.")

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("webhook_url must be the https URL Teams gave for the webhook")
        return value

    def url_secrets(self) -> list[str]:
        """The URL and its signature alone, so that neither shows up in any error text."""
        url = self.webhook_url.get_secret_value()
        found = [url]
        for name in ("sig", "signature"):
            found.extend(v for v in parse_qs(urlsplit(url).query).get(name, []) if v)
        return found


class TeamsMirror(MirrorSpec):
    link: str | None = Field(default=None, description="Optional URL for an 'Open' button.")
