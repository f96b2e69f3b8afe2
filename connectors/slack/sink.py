"""The ``slack`` sink: one living Block Kit message per key result (or objective) in a channel.

The first push posts (``chat.postMessage``); every later one edits that message
(``chat.update``) through the reference ``<channel id>:<ts>`` the core stores. The message carries
Slack message metadata (see :mod:`connectors.slack.blocks`), which makes two things possible
without help from the core:

* crash safety: a push without a reference (the previous push succeeded but its reference was
  lost) first searches the channel's recent history for a message whose metadata names this key
  result and cycle, and edits it instead of posting a second one;
* thread alerts: the state a message showed is read back from its metadata before it is edited,
  so crossing 25/50/75/100% or turning at risk/off track can be announced in its thread. The
  message is edited first and the alert posted after, so a retry never repeats an alert (an alert
  may be lost by a crash in between; the message itself never is).

Slack answers most errors with HTTP 200 and ``{"ok": false, "error": "<code>"}``; the
``classify`` hook below turns each code into the action and exception the HTTP engine knows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import httpx

from connectors.slack.blocks import (
    alerts,
    digest_blocks,
    digest_text,
    is_ours,
    key_result_blocks,
    key_result_text,
    metadata,
    payload_of,
    state_payload,
)
from connectors.slack.models import MessageRef, SlackConnection, SlackMirror
from okrsync.errors import (
    ConnectorError,
    CredentialsError,
    RateLimitedError,
    RetriableError,
    TargetNotFoundError,
    VendorResponseError,
)
from okrsync.sdk.connector import Sink
from okrsync.sdk.http import ErrorAction, ErrorRule, HttpClient, OwnsHttpClient, RetryPolicy
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate, PushResult

JSON = "application/json; charset=utf-8"  # without the charset Slack warns "missing_charset"
HISTORY_PAGE = 100


class MessageGoneError(TargetNotFoundError):
    """``chat.update`` found no message to edit (deleted by someone): post a new one."""


_INVITE = "invite the bot to the channel (/invite @<bot name>) or check the mirror's channel"
_CHECK_CREDENTIALS = "check the connection's token (a bot token xoxb-… of an installed app)"


def _fail(error: type[ConnectorError], message: str) -> ErrorRule:
    return ErrorRule(ErrorAction.FAIL, error, message)


SLACK_ERRORS: Mapping[str, ErrorRule] = MappingProxyType(
    {
        "channel_not_found": _fail(
            TargetNotFoundError,
            f"Slack cannot find the channel or the bot cannot see it: {_INVITE}",
        ),
        "not_in_channel": _fail(
            TargetNotFoundError, f"the bot is not a member of the channel: {_INVITE}"
        ),
        "is_archived": _fail(
            TargetNotFoundError,
            "the channel is archived: unarchive it or point the mirror at another channel",
        ),
        "invalid_auth": _fail(CredentialsError, f"Slack rejected the token: {_CHECK_CREDENTIALS}"),
        "not_authed": _fail(CredentialsError, f"Slack received no token: {_CHECK_CREDENTIALS}"),
        "account_inactive": _fail(
            CredentialsError,
            f"the token belongs to a deactivated bot or user: {_CHECK_CREDENTIALS}",
        ),
        "token_revoked": _fail(CredentialsError, f"the token was revoked: {_CHECK_CREDENTIALS}"),
        "token_expired": _fail(CredentialsError, f"the token expired: {_CHECK_CREDENTIALS}"),
        "missing_scope": _fail(
            CredentialsError,
            "the token lacks a scope (needs chat:write, channels:history, groups:history; "
            "channels:read, groups:read when channels are given by name)",
        ),
        "message_not_found": _fail(MessageGoneError, "the message to edit no longer exists"),
        "cant_update_message": _fail(MessageGoneError, "the message to edit is not the bot's"),
        "msg_too_long": _fail(ConnectorError, "Slack refused the message as too long"),
        "invalid_blocks": _fail(ConnectorError, "Slack refused the message's blocks"),
        "invalid_blocks_format": _fail(ConnectorError, "Slack refused the message's blocks"),
        "invalid_metadata_format": _fail(ConnectorError, "Slack refused the message metadata"),
        "invalid_metadata_schema": _fail(ConnectorError, "Slack refused the message metadata"),
        "no_text": _fail(ConnectorError, "Slack refused a message without text"),
        "ratelimited": ErrorRule(
            ErrorAction.RATE_LIMITED, RateLimitedError, "rate limited by Slack"
        ),
        "rate_limited": ErrorRule(
            ErrorAction.RATE_LIMITED, RateLimitedError, "rate limited by Slack"
        ),
        "fatal_error": ErrorRule(ErrorAction.RETRY, RetriableError, "Slack failed to answer"),
        "internal_error": ErrorRule(ErrorAction.RETRY, RetriableError, "Slack failed to answer"),
        "request_timeout": ErrorRule(ErrorAction.RETRY, RetriableError, "Slack timed out"),
        "service_unavailable": ErrorRule(ErrorAction.RETRY, RetriableError, "Slack is unavailable"),
    }
)
_OTHER = _fail(ConnectorError, "Slack refused the call")


def _error_body(response: httpx.Response) -> dict[str, Any] | None:
    """The ``{"ok": false, …}`` body of ``response``, or None for a success or a non-JSON body."""
    body = json.loads(response.content)  # ValueError → the engine's status table decides
    if isinstance(body, dict) and body.get("ok") is False:
        return body
    return None


def classify(response: httpx.Response) -> ErrorRule | None:
    """Slack's application errors, which arrive with HTTP 200 (429 and 5xx go by status)."""
    if response.status_code != 200:
        return None
    body = _error_body(response)
    if body is None:
        return None
    return SLACK_ERRORS.get(str(body.get("error")), _OTHER)


def describe_error(response: httpx.Response) -> str | None:
    """``error`` plus what Slack adds: the scope it needed, its ``response_metadata.messages``."""
    try:
        body = _error_body(response)
    except ValueError:
        return None
    if body is None:
        return None
    parts = [str(body.get("error", "unknown_error"))]
    if isinstance(body.get("needed"), str):
        parts.append(f"needed scope {body['needed']}")
    meta = body.get("response_metadata")
    if isinstance(meta, dict) and isinstance(meta.get("messages"), list):
        parts.extend(str(m) for m in meta["messages"])
    return "; ".join(parts)


@dataclass(frozen=True)
class _Message:
    """What one push wants the living message to say."""

    kind: str  # "key_result" or "objective"
    id: str
    cycle_id: str
    state: dict[str, Any]
    blocks: list[dict[str, Any]]
    text: str


class SlackSink(OwnsHttpClient, Sink[SlackConnection, SlackMirror]):
    mirror_model = SlackMirror
    supports_digest = True

    # Class attributes so a test or a subclass can make retries quick and pages small.
    retry: ClassVar[RetryPolicy] = RetryPolicy()
    history_page: ClassVar[int] = HISTORY_PAGE
    channel_page: ClassVar[int] = 200

    def __init__(self, name: str, config: SlackConnection) -> None:
        super().__init__(name, config)
        token = config.token.get_secret_value()
        self._client = HttpClient(
            connection=name,
            base_url=config.base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {token}"},
            timeout=config.timeout,
            retry=self.retry,
            classify=classify,
            describe_error=describe_error,
            secrets=config.secret_values(),
        )
        self._channel_ids: dict[str, str] = {}  # channel name → id, learned on the way

    def describe(self, mirror: SlackMirror) -> str:
        alerts_note = ", thread alerts" if mirror.thread_alerts else ""
        return f"{self.name}: Slack message in {mirror.channel}{alerts_note}"

    # --- the two entry points ---------------------------------------------------------------

    async def push(
        self, update: KeyResultUpdate, mirror: SlackMirror, previous_ref: str | None
    ) -> PushResult:
        subject = (
            f"mirror of key result {update.key_result_id!r} (Slack channel {mirror.channel!r})"
        )
        message = _Message(
            kind="key_result",
            id=update.key_result_id,
            cycle_id=update.cycle_id,
            state=state_payload(
                "key_result",
                update.key_result_id,
                update.cycle_id,
                update.progress_display,
                update.status,
            ),
            blocks=key_result_blocks(update, mirror.link),
            text=key_result_text(update),
        )
        return await self._deliver(
            message, mirror, previous_ref, subject, update if mirror.thread_alerts else None
        )

    async def push_digest(
        self, update: ObjectiveUpdate, mirror: SlackMirror, previous_ref: str | None
    ) -> PushResult:
        subject = (
            f"digest mirror of objective {update.objective_id!r} (Slack channel {mirror.channel!r})"
        )
        message = _Message(
            kind="objective",
            id=update.objective_id,
            cycle_id=update.cycle_id,
            state=state_payload(
                "objective", update.objective_id, update.cycle_id, update.progress, update.status
            ),
            blocks=digest_blocks(update, mirror.link),
            text=digest_text(update),
        )
        return await self._deliver(message, mirror, previous_ref, subject, None)

    # --- one delivery -----------------------------------------------------------------------

    async def _deliver(
        self,
        message: _Message,
        mirror: SlackMirror,
        previous_ref: str | None,
        subject: str,
        alert_for: KeyResultUpdate | None,
    ) -> PushResult:
        ref = MessageRef.parse(previous_ref) if previous_ref else None
        previous_state: dict[str, Any] | None = None
        recovered = False
        if ref is None:
            found = await self._find_own_message(message, mirror, subject)
            if found is not None:
                ref, previous_state = found
                recovered = True
        elif alert_for is not None:
            previous_state = await self._read_state(ref, subject)

        content = {
            "text": message.text,
            "blocks": message.blocks,
            "metadata": metadata(message.state),
        }
        created = False
        if ref is not None:
            try:
                await self._call(
                    "chat.update", {"channel": ref.channel, "ts": ref.ts, **content}, subject
                )
            except MessageGoneError:
                ref = None  # deleted in Slack: the next best thing is a new living message
        if ref is None:
            answer = await self._call(
                "chat.postMessage",
                {
                    "channel": mirror.channel,
                    "unfurl_links": False,
                    "unfurl_media": False,
                    **content,
                },
                subject,
            )
            ref = self._ref_of(answer, subject)
            created = True
            if mirror.channel_id is None:
                self._channel_ids[mirror.channel_name] = ref.channel

        replies = 0
        if alert_for is not None:
            for text in alerts(previous_state, alert_for):
                await self._call(
                    "chat.postMessage",
                    {"channel": ref.channel, "thread_ts": ref.ts, "text": text},
                    f"{subject} thread alert",
                )
                replies += 1
        return PushResult(
            ref=str(ref),
            detail={"created": created, "recovered": recovered, "thread_replies": replies},
        )

    async def _call(self, method: str, payload: dict[str, Any], subject: str) -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        answer = await self._client.request_json(
            "POST", method, content=body, headers={"Content-Type": JSON}, subject=subject
        )
        return self._checked(answer, method, subject)

    async def _get(self, method: str, params: dict[str, Any], subject: str) -> dict[str, Any]:
        answer = await self._client.get_json(method, params=params, subject=subject)
        return self._checked(answer, method, subject)

    def _checked(self, answer: Any, method: str, subject: str) -> dict[str, Any]:
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            raise VendorResponseError(
                f"Slack's {method} answer is not an ok object",
                connection=self.name,
                subject=subject,
            )
        return answer

    def _ref_of(self, answer: dict[str, Any], subject: str) -> MessageRef:
        channel, ts = answer.get("channel"), answer.get("ts")
        if not isinstance(channel, str) or not isinstance(ts, str):
            raise VendorResponseError(
                "Slack's chat.postMessage answer has no channel and ts",
                connection=self.name,
                subject=subject,
            )
        return MessageRef(channel, ts)

    # --- reading back ----------------------------------------------------------------------

    async def _read_state(self, ref: MessageRef, subject: str) -> dict[str, Any] | None:
        """The state the message at ``ref`` shows, from its metadata (None if it is gone)."""
        answer = await self._get(
            "conversations.history",
            {
                "channel": ref.channel,
                "latest": ref.ts,
                "inclusive": "true",
                "limit": 1,
                "include_all_metadata": "true",
            },
            subject,
        )
        for item in answer.get("messages") or []:
            if isinstance(item, dict) and item.get("ts") == ref.ts:
                return payload_of(item)
        return None

    async def _find_own_message(
        self, message: _Message, mirror: SlackMirror, subject: str
    ) -> tuple[MessageRef, dict[str, Any] | None] | None:
        """This mirror's message among the channel's recent ones, found by its metadata."""
        channel = mirror.channel_id or await self._resolve(mirror, subject)
        seen = 0
        cursor: str | None = None
        while seen < self.config.history_limit:
            params: dict[str, Any] = {
                "channel": channel,
                "limit": min(self.history_page, self.config.history_limit - seen),
                "include_all_metadata": "true",
            }
            if cursor:
                params["cursor"] = cursor
            answer = await self._get("conversations.history", params, subject)
            items = [m for m in answer.get("messages") or [] if isinstance(m, dict)]
            for item in items:
                if is_ours(item, message.kind, message.id, message.cycle_id):
                    return MessageRef(channel, str(item["ts"])), payload_of(item)
            seen += len(items)
            cursor = _next_cursor(answer)
            if not items or not cursor:
                break
        return None

    async def _resolve(self, mirror: SlackMirror, subject: str) -> str:
        """A channel name's id, through ``conversations.list`` (paged)."""
        name = mirror.channel_name
        if name in self._channel_ids:
            return self._channel_ids[name]
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {
                "types": "public_channel,private_channel",
                "exclude_archived": "true",
                "limit": self.channel_page,
            }
            if cursor:
                params["cursor"] = cursor
            answer = await self._get("conversations.list", params, subject)
            for channel in answer.get("channels") or []:
                if isinstance(channel, dict) and channel.get("name") == name:
                    self._channel_ids[name] = str(channel["id"])
                    return self._channel_ids[name]
            cursor = _next_cursor(answer)
            if not cursor:
                break
        raise TargetNotFoundError(
            f"no channel named #{name} is visible to the bot: {_INVITE}",
            connection=self.name,
            subject=subject,
        )


def _next_cursor(answer: dict[str, Any]) -> str | None:
    meta = answer.get("response_metadata")
    if isinstance(meta, dict) and isinstance(meta.get("next_cursor"), str) and meta["next_cursor"]:
        return str(meta["next_cursor"])
    return None
