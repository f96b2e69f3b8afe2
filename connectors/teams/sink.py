"""The ``teams`` sink: post an Adaptive Card to a channel through a Workflows (or legacy) webhook.

A webhook can only post, never edit, so every push is a new card and ``push`` returns no
reference; "one living message" is not possible here. Keep the channel calm with the mirror's
pacing options instead (``min_interval``, ``min_change``, ``on_change: false`` + ``schedule``).

What comes back, and what it means:

* Workflows answer **202 Accepted** with an empty body: the card is queued, and a card the flow
  cannot post fails later, in the flow's run history, not in this response;
* legacy connectors answer **200** with the body ``1``, or 200 with ``Webhook message delivery
  failed with error: Microsoft Teams endpoint returned HTTP error <code> …`` — the real status
  hidden in the text, which ``classify`` reads (429 is retried like a real 429);
* 400 with a text body: the card was refused; 401/403: the URL's signature was refused;
  404/410: the workflow or connector was deleted; 429 with ``Retry-After``: retried after it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import httpx

from connectors.teams.cards import digest_card, key_result_card
from connectors.teams.models import TeamsConnection, TeamsMirror
from okrsync.errors import (
    ConnectorError,
    CredentialsError,
    RateLimitedError,
    RetriableError,
    TargetNotFoundError,
    VendorResponseError,
)
from okrsync.sdk.connector import Sink
from okrsync.sdk.http import (
    DEFAULT_ERROR_TABLE,
    ErrorAction,
    ErrorRule,
    HttpClient,
    OwnsHttpClient,
    RetryPolicy,
)
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate, PushResult

_NEW_URL = "create the webhook again in the channel and update the connection's webhook_url"
_GONE = ErrorRule(
    ErrorAction.FAIL,
    TargetNotFoundError,
    f"the webhook no longer exists (its workflow or connector was deleted or turned off): "
    f"{_NEW_URL}",
)
_REFUSED_URL = ErrorRule(
    ErrorAction.FAIL,
    CredentialsError,
    f"the webhook URL was refused (its signature is wrong or was regenerated): {_NEW_URL}",
)
_REFUSED_CARD = ErrorRule(ErrorAction.FAIL, ConnectorError, "Teams refused the card")

TEAMS_ERROR_TABLE: Mapping[int, ErrorRule] = MappingProxyType(
    {
        **DEFAULT_ERROR_TABLE,
        400: _REFUSED_CARD,
        401: _REFUSED_URL,
        403: _REFUSED_URL,
        404: _GONE,
        410: _GONE,
        413: ErrorRule(ErrorAction.FAIL, ConnectorError, "Teams refused the card as too large"),
    }
)

_LEGACY_FAILURE = re.compile(r"delivery failed.*?HTTP error (\d{3})", re.IGNORECASE | re.DOTALL)
_HTML_PAGE = ErrorRule(
    ErrorAction.FAIL,
    VendorResponseError,
    "the webhook URL answered an HTML page instead of accepting the card (a proxy or login page?)",
)


def classify(response: httpx.Response) -> ErrorRule | None:
    """Failures a legacy connector wraps in HTTP 200, and HTML pages posing as success."""
    if response.status_code != 200:
        return None
    text = response.text
    match = _LEGACY_FAILURE.search(text)
    if match is not None:
        status = int(match.group(1))
        if status == 429:
            return ErrorRule(ErrorAction.RATE_LIMITED, RateLimitedError, "rate limited by Teams")
        if status >= 500:
            return ErrorRule(ErrorAction.RETRY, RetriableError, "Teams failed to post the card")
        return TEAMS_ERROR_TABLE.get(status, _REFUSED_CARD)
    if "html" in response.headers.get("content-type", "") or text.lstrip().startswith("<"):
        return _HTML_PAGE
    return None


def describe_error(response: httpx.Response) -> str | None:
    """Logic Apps errors are ``{"error": {"code", "message"}}``; the rest is plain text."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        code = error.get("code")
        return f"{code}: {error['message']}" if code else str(error["message"])
    return None


class TeamsSink(OwnsHttpClient, Sink[TeamsConnection, TeamsMirror]):
    mirror_model = TeamsMirror
    supports_digest = True

    retry: ClassVar[RetryPolicy] = RetryPolicy()

    def __init__(self, name: str, config: TeamsConnection) -> None:
        super().__init__(name, config)
        self._url = config.webhook_url.get_secret_value()
        self._client = HttpClient(
            connection=name,
            # The URL carries its signature in the query, which a base URL would mangle (httpx
            # appends a slash to it): requests go to the full URL instead.
            base_url="",
            timeout=config.timeout,
            retry=self.retry,
            error_table=TEAMS_ERROR_TABLE,
            classify=classify,
            describe_error=describe_error,
            secrets=[*config.secret_values(), *config.url_secrets()],
        )

    def describe(self, mirror: TeamsMirror) -> str:
        version = self.config.card_version
        return f"{self.name}: Teams card (Adaptive Card {version}), a new post each time"

    async def push(
        self, update: KeyResultUpdate, mirror: TeamsMirror, previous_ref: str | None
    ) -> PushResult:
        card = key_result_card(update, self.config.card_version, mirror.link)
        return await self._post(card, f"Teams mirror of key result {update.key_result_id!r}")

    async def push_digest(
        self, update: ObjectiveUpdate, mirror: TeamsMirror, previous_ref: str | None
    ) -> PushResult:
        card = digest_card(update, self.config.card_version, mirror.link)
        return await self._post(card, f"Teams digest mirror of objective {update.objective_id!r}")

    async def _post(self, card: dict[str, Any], subject: str) -> PushResult:
        body = json.dumps(card, separators=(",", ":"), ensure_ascii=False).encode()
        response = await self._client.request(
            "POST",
            self._url,
            content=body,
            headers={"Content-Type": "application/json"},
            subject=subject,
        )
        if not 200 <= response.status_code < 300:
            raise ConnectorError(
                f"the webhook answered HTTP {response.status_code} instead of accepting the card; "
                "configure the final URL",
                connection=self.name,
                subject=subject,
                status_code=response.status_code,
            )
        # Nothing to edit next time: a webhook post cannot be changed afterwards.
        return PushResult(ref=None, detail={"status": response.status_code})
