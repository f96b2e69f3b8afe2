"""The ``slack`` sink: one living Block Kit message per key result (or objective) in a channel.

The first push posts (``chat.postMessage``); every later one edits that message
(``chat.update``) through the reference ``<channel id>:<ts>`` the core stores. The message carries
Slack message metadata (see :mod:`connectors.slack.blocks`), which makes two things possible
without help from the core:

* crash safety: a push without a reference that may not be the mirror's first (an earlier attempt
  may have posted before a crash or a lost answer kept its reference from being stored) first
  searches the channel's recent history for a message whose metadata names this key result and
  cycle, and edits it instead of posting a second one. The dispatcher says when a push is the
  mirror's very first attempt (:class:`~okrsync.sdk.connector.PushContext`); then nothing can
  exist yet and the push is one ``chat.postMessage``. A post that fails without a clear answer
  (5xx, timeout, dropped connection) may still have been made, so it is not retried blindly:
  the channel is searched before the next attempt;
* thread alerts: the state a message showed is read back from its metadata before it is edited,
  so crossing 25/50/75/100% or turning at risk/off track can be announced in its thread. The
  message is edited first and the alert posted after, so a retry never repeats an alert (an alert
  may be lost by a crash in between; the message itself never is).

Slack answers most errors with HTTP 200 and ``{"ok": false, "error": "<code>"}``; the
``classify`` hook below turns each code into the action and exception the HTTP engine knows.

Slack's limits are per method and per minute (``chat.update`` and ``conversations.history`` Tier 3,
50 a minute; ``conversations.list`` Tier 2, 20; ``chat.postMessage`` about one a second per
channel with short bursts; for an app commercially distributed outside the Marketplace,
``conversations.history`` is 1 a minute with pages of at most 15, set by the connection's
``distribution``). Each call first takes a turn in a :class:`WindowBudget` for its method
(for posts, its channel), so a burst of changes waits its turn instead of running into 429s.
Slack counts per workspace and app, so the windows (and the hold a ``Retry-After`` sets) are kept
in buckets of the connection, which the core shares between replicas of the daemon.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import httpx

from connectors.slack import check_ins as wire
from connectors.slack.blocks import (
    alerts,
    digest_blocks,
    digest_text,
    is_ours,
    key_result_blocks,
    key_result_state,
    key_result_text,
    metadata,
    objective_state,
    payload_of,
)
from connectors.slack.limits import history_limits, history_page
from connectors.slack.models import MessageRef, SlackConnection, SlackMirror
from okrsync.errors import (
    ConnectorError,
    CredentialsError,
    RateLimitedError,
    RetriableError,
    TargetNotFoundError,
    VendorResponseError,
)
from okrsync.sdk.budget import BudgetPolicy, CallBudget
from okrsync.sdk.chat import ChatUser, Command, KeyResultChoice, Reminder, Submission
from okrsync.sdk.connector import PushContext, Sink
from okrsync.sdk.http import ErrorAction, ErrorRule, HttpClient, RetryPolicy
from okrsync.sdk.ledger import SharedBucket
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate, PushResult
from okrsync.sdk.pace import SlidingWindow

JSON = "application/json; charset=utf-8"  # without the charset Slack warns "missing_charset"
HISTORY_PAGE = 100

# Slack's documented limits as (calls, seconds): per workspace for this connection, by method
# (docs.slack.dev, "Rate limits" and each method's page). conversations.history is Tier 3 for
# internal (customer-built) and Marketplace apps; the connection's ``distribution`` replaces it
# with that kind of app's published pace (see :mod:`connectors.slack.limits`).
METHOD_PACE: Mapping[str, tuple[int, float]] = MappingProxyType(
    {
        "chat.update": (50, 60.0),  # Tier 3: 50+ per minute
        "conversations.history": (50, 60.0),  # Tier 3
        "conversations.list": (20, 60.0),  # Tier 2: 20+ per minute
    }
)
# chat.postMessage: "1 per second per channel, short bursts >1 allowed" — five in any five seconds.
POST_PACE: tuple[int, float] = (5, 5.0)
# Slack counts calls when they arrive; a little slack absorbs the jitter between send and arrival.
WINDOW_MARGIN = 0.5


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


class WindowBudget(CallBudget):
    """At most ``calls`` requests in any ``window`` seconds, on top of the SDK budget's slot.

    Slack states its limits as calls per minute and welcomes bursts within them, which a token
    bucket kept under the same count could only allow by slowing the steady pace. A call goes
    one ``window`` after the call ``calls`` places before it (a sliding window,
    :class:`~okrsync.sdk.pace.SlidingWindow`). Each caller books its send time before it sleeps,
    so callers waiting together leave one after another, never all at once; with ``shared``, the
    booking is in the connection's bucket, which every replica of the daemon shares, because
    Slack counts per workspace and app, not per process.
    """

    def __init__(
        self,
        calls: int,
        window: float,
        *,
        margin: float = WINDOW_MARGIN,
        shared: SharedBucket | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if calls < 1 or window <= 0:
            raise ValueError("a window budget needs at least one call in a positive window")
        self.window = window + margin
        super().__init__(
            BudgetPolicy(),
            pace=SlidingWindow(calls, self.window),
            shared=shared,
            clock=clock,
            sleep=sleep,
        )


@dataclass(frozen=True)
class _Message:
    """What one push wants the living message to say."""

    kind: str  # "key_result" or "objective"
    id: str
    cycle_id: str
    state: dict[str, Any]
    blocks: list[dict[str, Any]]
    text: str


class SlackSink(Sink[SlackConnection, SlackMirror]):
    mirror_model = SlackMirror
    supports_digest = True

    # Class attributes so a test or a subclass can make retries quick, pages small, pace tight.
    retry: ClassVar[RetryPolicy] = RetryPolicy()
    history_page: ClassVar[int] = HISTORY_PAGE
    channel_page: ClassVar[int] = 200
    method_pace: ClassVar[Mapping[str, tuple[int, float]]] = METHOD_PACE
    post_pace: ClassVar[tuple[int, float]] = POST_PACE

    def __init__(self, name: str, config: SlackConnection) -> None:
        super().__init__(name, config)
        token = config.token.get_secret_value()
        options: dict[str, Any] = {
            "connection": name,
            "base_url": config.base_url.rstrip("/") + "/",
            "headers": {"Authorization": f"Bearer {token}"},
            "timeout": config.timeout,
            "classify": classify,
            "describe_error": describe_error,
            "secrets": config.secret_values(),
        }
        # Slack's Retry-After holds every replica of the daemon: the hold is kept in a bucket
        # of the connection, which the core shares between replicas on one store.
        budget = CallBudget(shared=self.budgets.bucket("api"))
        self._client = HttpClient(retry=self.retry, budget=budget, **options)
        # chat.postMessage is not idempotent: sent once per attempt, see _post
        self._once = HttpClient(retry=RetryPolicy(max_attempts=1), budget=budget, **options)
        paces = dict(self.method_pace)
        if "conversations.history" in paces:
            paces["conversations.history"] = history_limits(config.distribution).pace
        self._method_pace = {
            m: self.window_budget(pace, self.budgets.bucket(m)) for m, pace in paces.items()
        }
        self._history_page = history_page(config.distribution, self.history_page)
        self._post_pace: dict[str, WindowBudget] = {}  # per channel
        self._channel_ids: dict[str, str] = {}  # channel name → id, learned on the way

    def window_budget(self, pace: tuple[int, float], shared: SharedBucket) -> WindowBudget:
        """The budget that keeps one method (or one channel's posts) within ``pace``."""
        return WindowBudget(*pace, shared=shared)

    @property
    def api_calls(self) -> int:
        return self._client.calls + self._once.calls

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._once.aclose()

    def describe(self, mirror: SlackMirror) -> str:
        alerts_note = ", thread alerts" if mirror.thread_alerts else ""
        return f"{self.name}: Slack message in {mirror.channel}{alerts_note}"

    # --- the two entry points ---------------------------------------------------------------

    async def push(
        self, update: KeyResultUpdate, mirror: SlackMirror, previous_ref: str | None
    ) -> PushResult:
        return await self.deliver(update, mirror, PushContext(previous_ref))

    async def push_digest(
        self, update: ObjectiveUpdate, mirror: SlackMirror, previous_ref: str | None
    ) -> PushResult:
        return await self.deliver(update, mirror, PushContext(previous_ref))

    async def deliver(
        self, update: KeyResultUpdate | ObjectiveUpdate, mirror: SlackMirror, context: PushContext
    ) -> PushResult:
        if isinstance(update, ObjectiveUpdate):
            return await self._deliver_digest(update, mirror, context)
        subject = (
            f"mirror of key result {update.key_result_id!r} (Slack channel {mirror.channel!r})"
        )
        message = _Message(
            kind="key_result",
            id=update.key_result_id,
            cycle_id=update.cycle_id,
            state=key_result_state(update),
            blocks=key_result_blocks(update, mirror.link),
            text=key_result_text(update),
        )
        return await self._deliver(
            message, mirror, context, subject, update if mirror.thread_alerts else None
        )

    async def _deliver_digest(
        self, update: ObjectiveUpdate, mirror: SlackMirror, context: PushContext
    ) -> PushResult:
        subject = (
            f"digest mirror of objective {update.objective_id!r} (Slack channel {mirror.channel!r})"
        )
        message = _Message(
            kind="objective",
            id=update.objective_id,
            cycle_id=update.cycle_id,
            state=objective_state(update),
            blocks=digest_blocks(update, mirror.link),
            text=digest_text(update),
        )
        return await self._deliver(message, mirror, context, subject, None)

    # --- one delivery -----------------------------------------------------------------------

    async def _deliver(
        self,
        message: _Message,
        mirror: SlackMirror,
        context: PushContext,
        subject: str,
        alert_for: KeyResultUpdate | None,
    ) -> PushResult:
        ref = MessageRef.parse(context.previous_ref) if context.previous_ref else None
        previous_state: dict[str, Any] | None = None
        recovered = False
        if ref is None:
            if not context.first_attempt:  # an earlier attempt may have posted: look first
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
            ref, found_state = await self._post(message, mirror, content, subject)
            created = True
            if found_state is not None:  # the answer was lost but the channel has our message
                recovered = True
                if found_state != message.state:  # an older one of ours, not this post
                    await self._call(
                        "chat.update", {"channel": ref.channel, "ts": ref.ts, **content}, subject
                    )
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

    async def _post(
        self, message: _Message, mirror: SlackMirror, content: dict[str, Any], subject: str
    ) -> tuple[MessageRef, dict[str, Any] | None]:
        """Post the living message: its reference and, when it was found after a lost answer
        instead, the state the found message shows.

        When an attempt fails without a clear answer (a 5xx, a timeout, a dropped connection),
        Slack may have posted the message all the same, so the channel is searched before the
        next attempt. A rate-limit answer is clear (nothing was posted) and is simply retried
        once the connection's budget has waited out its ``Retry-After``.
        """
        payload = {
            "channel": mirror.channel,
            "unfurl_links": False,
            "unfurl_media": False,
            **content,
        }
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = await self._call("chat.postMessage", payload, subject, once=True)
                return self._ref_of(answer, subject), None
            except RateLimitedError as exc:
                wait = self.retry.rate_limit_backoff if exc.retry_after is None else 0.0
                if attempt >= self.retry.max_attempts or (
                    exc.retry_after is not None and exc.retry_after > self.retry.max_retry_after
                ):
                    raise
            except RetriableError:
                found = await self._find_own_message(message, mirror, subject)
                if found is not None:
                    return found[0], found[1] or {}
                if attempt >= self.retry.max_attempts:
                    raise
                wait = self.retry.backoff(attempt)
            await asyncio.sleep(wait)

    async def _call(
        self, method: str, payload: dict[str, Any], subject: str, *, once: bool = False
    ) -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        client = self._once if once else self._client
        async with self._turn(method, payload.get("channel")):
            answer = await client.request_json(
                "POST", method, content=body, headers={"Content-Type": JSON}, subject=subject
            )
        return self._checked(answer, method, subject)

    async def _get(self, method: str, params: dict[str, Any], subject: str) -> dict[str, Any]:
        async with self._turn(method, None):
            answer = await self._client.get_json(method, params=params, subject=subject)
        return self._checked(answer, method, subject)

    @asynccontextmanager
    async def _turn(self, method: str, channel: object) -> AsyncIterator[None]:
        """Wait until Slack's limit for ``method`` (for a post: in its channel) allows a call."""
        budget = self._method_pace.get(method)
        if method == "chat.postMessage" and isinstance(channel, str):
            key = self._channel_ids.get(channel.removeprefix("#"), channel)
            budget = self._post_pace.get(key)
            if budget is None:
                shared = self.budgets.bucket(f"chat.postMessage:{key}")
                budget = self._post_pace[key] = self.window_budget(self.post_pace, shared)
        if budget is None:
            yield
            return
        async with budget.slot():
            yield

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

    # --- check-ins from Slack (okrsync.sdk.chat.ChatCheckIns) ------------------------------

    @property
    def accepts_requests(self) -> bool:
        return self.config.signing_secret is not None

    def verify_request(self, headers: Mapping[str, str], body: bytes, now: float) -> bool:
        secret = self.config.signing_secret
        if secret is None:
            return False
        return wire.verify(secret.get_secret_value(), headers, body, now)

    def read_command(self, body: bytes) -> Command | None:
        return wire.read_command(body)

    def read_submission(self, body: bytes) -> Submission | None:
        return wire.read_submission(body)

    def refuse(self, errors: Mapping[str, str]) -> dict[str, object]:
        return wire.refusal(errors)

    async def open_check_in(self, command: Command, choices: Sequence[KeyResultChoice]) -> None:
        """``views.open`` with the command's ``trigger_id`` (valid for 3 s, used once)."""
        view = wire.check_in_view(choices) if choices else wire.no_key_results_view(command.user)
        payload = {"trigger_id": command.trigger_id, "view": view}
        await self._call("views.open", payload, f"check-in modal for {command.user.id}", once=True)

    async def identify(self, user: ChatUser) -> ChatUser:
        """``users.info``: the user's handle and e-mail (needs ``users:read.email``)."""
        answer = await self._get("users.info", {"user": user.id}, f"Slack user {user.id}")
        found = answer.get("user")
        if not isinstance(found, dict):
            return user
        profile = found.get("profile")
        email = profile.get("email") if isinstance(profile, dict) else None
        name = found.get("name")
        return ChatUser(
            user.id,
            str(name) if isinstance(name, str) and name else user.name,
            str(email) if isinstance(email, str) and email else user.email,
        )

    async def send_reminder(self, reminder: Reminder) -> None:
        content = wire.reminder_message(reminder, self.config.check_in_url)
        payload = {"channel": reminder.channel, "unfurl_links": False, **content}
        # one attempt: a post is not idempotent, and the core sends a reminder at most once
        subject = f"check-in reminder in {reminder.channel}"
        await self._call("chat.postMessage", payload, subject, once=True)

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
                "limit": min(self._history_page, self.config.history_limit - seen),
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
