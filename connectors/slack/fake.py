"""A fake of the Slack Web API, enough of it for the sink: the real wire format, kept honest.

Speaks what ``https://slack.com/api/`` speaks for the methods okrsync uses —
``chat.postMessage``, ``chat.update``, ``conversations.history``, ``conversations.list``,
``views.open``, ``users.info`` and ``auth.test`` — with Slack's habits:

* every method answers HTTP 200 with ``{"ok": true, …}`` or ``{"ok": false, "error": "<code>"}``
  (``invalid_auth``, ``not_authed``, ``token_revoked``, ``channel_not_found``,
  ``not_in_channel``, ``is_archived``, ``message_not_found``, ``cant_update_message``,
  ``no_text``, ``msg_too_long``, ``invalid_blocks`` with ``response_metadata.messages``,
  ``invalid_metadata_format``);
* rate limits per method (and, for ``chat.postMessage``, per channel) answer HTTP 429 with
  ``Retry-After: <seconds>`` and ``{"ok": false, "error": "ratelimited"}``;
* bodies may be JSON (the token must then be in ``Authorization: Bearer``) or form-encoded (where
  ``blocks`` and ``metadata`` are JSON strings and ``token`` may be a field); read methods also
  take query parameters;
* channels are addressed by id, or by name (``okrs`` or ``#okrs``) where Slack allows it
  (``chat.postMessage``; ``chat.update`` and ``conversations.history`` need the id);
* message metadata is stored and returned by ``conversations.history`` only with
  ``include_all_metadata=true``; history is newest first, cursor-paged with
  ``response_metadata.next_cursor``; thread replies are not in the channel history, and a
  thread's parent carries ``thread_ts``, ``reply_count``, ``reply_users_count``,
  ``latest_reply`` and ``reply_users``;
* ``conversations.history`` follows the app's distribution (``SlackState.set_distribution``):
  Tier 3 with pages of 100 by default and up to 999 for internal and Marketplace apps, 1 a
  minute with pages of at most 15 for an app commercially distributed outside the Marketplace.

* ``views.open`` takes a ``trigger_id`` the fake issued (:meth:`SlackState.slash_command`), once
  and within 3 s of its command (``expired_trigger_id``, ``exchanged_trigger_id``,
  ``invalid_trigger_id`` otherwise), and a modal view (``type``, a title of at most 24
  characters, at most 100 blocks; ``invalid_arguments`` otherwise);
* ``users.info`` answers the workspace's people (:data:`PEOPLE`) with ``profile.email``, and
  ``user_not_found`` for anyone else.

Playing Slack towards okrsync: :meth:`SlackState.slash_command` and
:meth:`SlackState.view_submission` build the form-encoded bodies Slack sends to an app's request
URLs, with the headers Slack signs them with (``X-Slack-Signature``, ``X-Slack-Request-Timestamp``)
under the app's :data:`SIGNING_SECRET`.

Tests read the state in-process through ``app.state.slack`` (a :class:`SlackState`): messages per
channel, how many were posted per channel and per key result/objective, updates per message, and
``rate_limited``: how many calls each limit refused, counted for the workspace whoever sent them.
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.slack.check_ins import signed_headers
from connectors.slack.limits import DEFAULT_DISTRIBUTION, Distribution, history_limits

BOT_TOKEN = "xoxb-1234567890-0987654321-okrsyncFakeToken"  # noqa: S105 - the fake workspace's own token
BOT_USER = "U0OKRBOT01"
BOT_ID = "B0OKRBOT01"
TEAM = "T0OKRTEAM1"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # noqa: S105 - the fake app's own secret
TRIGGER_LIFETIME = 3.0  # seconds a trigger_id can open a view
# The fake workspace's people: id → (handle, e-mail).
PEOPLE: dict[str, tuple[str, str]] = {
    "U0ALICE001": ("alice", "alice@example.com"),
    "U0BOB00001": ("bob", "bob@example.com"),
}
MAX_TEXT = 40_000
MAX_BLOCKS = 50

# (calls, seconds) per method; chat.postMessage is counted per channel ("1 per second per
# channel, short bursts allowed"), the others per workspace: Tier 3 ≈ 50/min, Tier 2 ≈ 20/min.
DEFAULT_LIMITS: dict[str, tuple[int, float]] = {
    "chat.postMessage": (5, 5.0),
    "chat.update": (50, 60.0),
    "conversations.history": (50, 60.0),
    "conversations.list": (20, 60.0),
    "auth.test": (100, 60.0),
    "users.info": (100, 60.0),  # Tier 4
}


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    is_archived: bool = False
    bot_is_member: bool = True
    created: int = 1_600_000_000


@dataclass
class Message:
    ts: str
    text: str
    user: str
    bot_id: str | None = None
    blocks: list[Any] | None = None
    metadata: dict[str, Any] | None = None
    thread_ts: str | None = None
    edited_ts: str | None = None
    updates: int = 0

    def to_json(self, *, with_metadata: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "text": self.text,
            "user": self.user,
            "ts": self.ts,
        }
        if self.bot_id:
            out["bot_id"] = self.bot_id
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.edited_ts:
            out["edited"] = {"user": self.user, "ts": self.edited_ts}
        if with_metadata and self.metadata is not None:
            out["metadata"] = self.metadata
        return out


class SlackError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class SlackState:
    """The workspace the fake serves. The server thread writes it, the test thread reads it."""

    tokens: set[str] = field(default_factory=lambda: {BOT_TOKEN})
    revoked: set[str] = field(default_factory=set)
    channels: dict[str, Channel] = field(default_factory=dict)
    messages: dict[str, list[Message]] = field(default_factory=lambda: defaultdict(list))
    limits: dict[str, tuple[int, float]] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    posted_per_channel: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    posted_per_subject: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Calls refused for a spent limit, per limit (method, or ``chat.postMessage:<channel>``):
    # counted for the workspace and app, whichever client or process sent them, as Slack does.
    rate_limited: Counter[str] = field(default_factory=Counter)
    clock: Callable[[], float] = time.monotonic  # the limits' clock
    # How the app is distributed: conversations.history's pace and page size follow (see
    # set_distribution); "internal" (Tier 3) unless a test says otherwise.
    distribution: Distribution = DEFAULT_DISTRIBUTION
    lock: threading.RLock = field(default_factory=threading.RLock)
    views: list[dict[str, Any]] = field(default_factory=list)  # views.open's views, in order
    triggers: dict[str, float] = field(default_factory=dict)  # trigger_id → issued at (clock)
    used: set[str] = field(default_factory=set)  # trigger_ids that opened a view
    _trigger_count: int = 0
    _calls: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _last_ts: float = 0.0

    # --- helpers for tests ------------------------------------------------------------------

    def set_distribution(self, distribution: Distribution) -> None:
        """Serve ``conversations.history`` as Slack does to this kind of app: its pace, its
        default and maximum ``limit``."""
        with self.lock:
            self.distribution = distribution
            self.limits["conversations.history"] = history_limits(distribution).pace

    def add_channel(self, channel: Channel) -> None:
        with self.lock:
            self.channels[channel.id] = channel

    def channel_messages(self, channel_id: str) -> list[Message]:
        """Top-level messages of a channel, oldest first (replies excluded)."""
        with self.lock:
            return [m for m in self.messages[channel_id] if m.thread_ts in (None, m.ts)]

    def replies(self, channel_id: str, thread_ts: str) -> list[Message]:
        with self.lock:
            return [
                m
                for m in self.messages[channel_id]
                if m.thread_ts == thread_ts and m.ts != thread_ts
            ]

    def posts_for(self, kind: str, id: str) -> int:
        """Top-level messages posted for a key result (``key_result``) or objective."""
        with self.lock:
            return self.posted_per_subject[f"{kind}:{id}"]

    def find(self, channel_id: str, ts: str) -> Message | None:
        with self.lock:
            for message in self.messages[channel_id]:
                if message.ts == ts:
                    return message
            return None

    def delete(self, channel_id: str, ts: str) -> None:
        """What a person deleting the bot's message does."""
        with self.lock:
            self.messages[channel_id] = [m for m in self.messages[channel_id] if m.ts != ts]

    def slash_command(
        self,
        user_id: str,
        *,
        text: str = "",
        command: str = "/okr",
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
    ) -> tuple[bytes, dict[str, str]]:
        """The body and signed headers Slack sends to a slash command's request URL when
        ``user_id`` types ``command text``; its ``trigger_id`` is issued now."""
        with self.lock:
            self._trigger_count += 1
            trigger = f"{self._trigger_count}.1234567890.{'a' * 32}"
            self.triggers[trigger] = self.clock()
        fields = {
            "token": "gIkuvaNzQIHg97ATvDxqgjtO",  # the deprecated verification token
            "team_id": TEAM,
            "team_domain": "okrsync-fake",
            "channel_id": "C0OKRS0001",
            "channel_name": "okrs",
            "user_id": user_id,
            "user_name": PEOPLE.get(user_id, (user_id.lower(), ""))[0],
            "command": command,
            "text": text,
            "api_app_id": "A0OKRAPP01",
            "is_enterprise_install": "false",
            "response_url": f"https://hooks.slack.com/commands/{TEAM}/1/{trigger[:8]}",
            "trigger_id": trigger,
        }
        body = urlencode(fields).encode()
        return body, signed_headers(secret, _now(timestamp), body)

    def view_submission(
        self,
        user_id: str,
        values: dict[str, dict[str, dict[str, Any]]],
        *,
        view: dict[str, Any] | None = None,
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
    ) -> tuple[bytes, dict[str, str]]:
        """The body and signed headers Slack sends to the interactivity request URL when
        ``user_id`` submits ``view`` (the last one opened unless given) with ``state.values``
        ``values`` (``{block_id: {action_id: element state}}``)."""
        with self.lock:
            shown = view if view is not None else self.views[-1]
        handle = PEOPLE.get(user_id, (user_id.lower(), ""))[0]
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM, "domain": "okrsync-fake"},
            "user": {"id": user_id, "username": handle, "name": handle, "team_id": TEAM},
            "api_app_id": "A0OKRAPP01",
            "token": "gIkuvaNzQIHg97ATvDxqgjtO",
            "trigger_id": f"{self._trigger_count + 1}.1234567890.{'b' * 32}",
            "view": {
                "id": shown.get("id", "V0000000001"),
                "team_id": TEAM,
                "type": "modal",
                "blocks": shown.get("blocks", []),
                "private_metadata": shown.get("private_metadata", ""),
                "callback_id": shown.get("callback_id", ""),
                "state": {"values": values},
                "hash": "1700000000.abcdefgh",
                "title": shown.get("title"),
                "app_id": "A0OKRAPP01",
                "bot_id": BOT_ID,
            },
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
        return body, signed_headers(secret, _now(timestamp), body)

    # --- internals --------------------------------------------------------------------------

    def next_ts(self) -> str:
        with self.lock:
            now = max(time.time(), self._last_ts + 0.000001)
            self._last_ts = now
            return f"{now:.6f}"

    def throttle(self, key: str, method: str) -> float | None:
        """Seconds to wait if this call is over its method's limit, else None (and count it)."""
        limit = self.limits.get(method)
        if limit is None:
            return None
        calls, window = limit
        now = self.clock()
        with self.lock:
            recent = self._calls[key]
            while recent and recent[0] <= now - window:
                recent.popleft()
            if len(recent) >= calls:
                self.rate_limited[key] += 1
                return max(1.0, math.ceil(recent[0] + window - now))
            recent.append(now)
            return None


def _now(timestamp: int | None) -> int:
    return int(time.time()) if timestamp is None else timestamp


def default_state() -> SlackState:
    """A small workspace: the bot is in #okrs, #leadership (private) and #sales, not in #random."""
    state = SlackState()
    for channel in (
        Channel("C0OKRS0001", "okrs"),
        Channel("C0SALES001", "sales"),
        Channel("C0RANDOM01", "random", bot_is_member=False),
        Channel("G0LEADS001", "leadership", is_private=True),
        Channel("C0OLDQ3001", "okrs-2026-q3", is_archived=True),
    ):
        state.add_channel(channel)
    for index in range(1, 13):  # enough channels for conversations.list to page
        state.add_channel(Channel(f"C0TEAM{index:04d}", f"team-{index:02d}", bot_is_member=False))
    people = [
        ("U0ALICE001", "Morning! Pipeline review at 10."),
        ("U0BOB00001", "Q4 plan is in the doc"),
    ]
    for user, text in people:
        state.messages["C0OKRS0001"].append(Message(ts=state.next_ts(), text=text, user=user))
    return state


def _with_thread(message: Message, replies: list[Message], with_metadata: bool) -> dict[str, Any]:
    """A channel-history message; a thread's parent carries its thread as Slack shows it:
    ``thread_ts`` (its own ts), ``reply_count``, ``reply_users_count``, ``latest_reply``,
    ``reply_users``."""
    shown = message.to_json(with_metadata=with_metadata)
    if replies:
        users = list(dict.fromkeys(r.user for r in replies))
        shown["thread_ts"] = message.ts
        shown["reply_count"] = len(replies)
        shown["reply_users_count"] = len(users)
        shown["latest_reply"] = replies[-1].ts
        shown["reply_users"] = users
    return shown


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def _cursor(kind: str, value: str) -> str:
    return base64.b64encode(f"{kind}:{value}".encode()).decode()


def _uncursor(cursor: str, kind: str) -> str:
    try:
        decoded = base64.b64decode(cursor.encode(), validate=True).decode()
    except ValueError:
        raise SlackError("invalid_cursor") from None
    prefix, _, value = decoded.partition(":")
    if prefix != kind or not value:
        raise SlackError("invalid_cursor")
    return value


def _block_errors(blocks: Any) -> list[str]:
    """Block Kit checks Slack applies, worded the way its ``response_metadata.messages`` are."""
    if not isinstance(blocks, list):
        return ["[ERROR] must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"[ERROR] no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for index, block in enumerate(blocks):
        where = f"/blocks/{index}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"[ERROR] missing required field: type [json-pointer:{where}]")
            continue
        kind = block["type"]
        text = block.get("text")
        if kind == "header":
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                errors.append(
                    f"[ERROR] must provide a plain_text object [json-pointer:{where}/text]"
                )
            elif len(str(text.get("text", ""))) > 150:
                errors.append(
                    f"[ERROR] must be less than 151 characters [json-pointer:{where}/text/text]"
                )
        elif kind == "section":
            fields = block.get("fields")
            if text is None and not fields:
                errors.append(f"[ERROR] must provide text or fields [json-pointer:{where}]")
            if isinstance(text, dict) and len(str(text.get("text", ""))) > 3000:
                errors.append(
                    f"[ERROR] must be less than 3001 characters [json-pointer:{where}/text/text]"
                )
            if isinstance(fields, list) and len(fields) > 10:
                errors.append(
                    f"[ERROR] no more than 10 items allowed [json-pointer:{where}/fields]"
                )
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                errors.append(f"[ERROR] must have 1 to 10 elements [json-pointer:{where}/elements]")
        elif kind not in ("divider", "actions", "image", "rich_text"):
            errors.append(f"[ERROR] unsupported type: {kind} [json-pointer:{where}/type]")
    return errors


def _metadata(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise SlackError("invalid_metadata_format") from None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("event_type"), str)
        or not isinstance(value.get("event_payload"), dict)
    ):
        raise SlackError("invalid_metadata_format")
    return {"event_type": value["event_type"], "event_payload": value["event_payload"]}


def _blocks(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise SlackError("invalid_blocks_format") from None
    errors = _block_errors(value)
    if errors:
        raise SlackError("invalid_blocks", errors=errors, response_metadata={"messages": errors})
    assert isinstance(value, list)
    return value


def _view_errors(view: Any) -> list[str]:
    """The checks Slack applies to a modal passed to ``views.open``."""
    if not isinstance(view, dict):
        return ["[ERROR] must provide an object [json-pointer:/view]"]
    errors: list[str] = []
    if view.get("type") != "modal":
        errors.append("[ERROR] must be 'modal' [json-pointer:/view/type]")
    title = view.get("title")
    if not isinstance(title, dict) or title.get("type") != "plain_text":
        errors.append("[ERROR] must provide a plain_text object [json-pointer:/view/title]")
    elif len(str(title.get("text", ""))) > 24:
        errors.append("[ERROR] must be less than 25 characters [json-pointer:/view/title/text]")
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or len(blocks) > 100:
        errors.append("[ERROR] must be an array of at most 100 items [json-pointer:/view/blocks]")
    elif any(isinstance(b, dict) and b.get("type") == "input" for b in blocks) and not view.get(
        "submit"
    ):
        errors.append("[ERROR] input blocks need a submit button [json-pointer:/view/submit]")
    return errors


def slack_app(state: SlackState | None = None) -> Starlette:
    """The fake as an ASGI app (a fresh default workspace unless ``state`` is given)."""
    workspace = state if state is not None else default_state()

    async def arguments(request: Request) -> tuple[dict[str, Any], bool]:
        """The call's arguments from query, form or JSON body, and whether the body was JSON."""
        args: dict[str, Any] = dict(request.query_params)
        if request.method != "POST":
            return args, False
        raw = await request.body()
        content_type = request.headers.get("content-type", "")
        if "application/json" in content_type:
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError:
                raise SlackError("invalid_json") from None
            if not isinstance(body, dict):
                raise SlackError("json_not_object")
            args.update(body)
            return args, True
        if raw.strip():
            if "application/x-www-form-urlencoded" not in content_type and content_type:
                raise SlackError("invalid_form_data")
            args.update(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
        return args, False

    def authenticate(request: Request, args: dict[str, Any], is_json: bool) -> None:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        if token is None and not is_json:
            token = args.get("token")  # form and query callers may pass it as a field
        if not token:
            raise SlackError("not_authed")
        if token in workspace.revoked:
            raise SlackError("token_revoked")
        if token not in workspace.tokens:
            raise SlackError("invalid_auth")

    def channel_by_id(value: Any) -> Channel:
        with workspace.lock:
            channel = workspace.channels.get(str(value or ""))
        if channel is None or (channel.is_private and not channel.bot_is_member):
            raise SlackError("channel_not_found")
        return channel

    def channel_by_id_or_name(value: Any) -> Channel:
        text = str(value or "")
        with workspace.lock:
            if text in workspace.channels:
                return channel_by_id(text)
            for channel in workspace.channels.values():
                if channel.name == text.removeprefix("#"):
                    return channel_by_id(channel.id)
        raise SlackError("channel_not_found")

    def post_message(args: dict[str, Any]) -> dict[str, Any]:
        channel = channel_by_id_or_name(args.get("channel"))
        if channel.is_archived:
            raise SlackError("is_archived")
        if not channel.bot_is_member:
            raise SlackError("not_in_channel")
        text = str(args.get("text") or "")
        blocks = _blocks(args.get("blocks"))
        if not text and not blocks:
            raise SlackError("no_text")
        if len(text) > MAX_TEXT:
            raise SlackError("msg_too_long")
        meta = _metadata(args.get("metadata"))
        thread_ts = args.get("thread_ts") or None
        with workspace.lock:
            if thread_ts is not None and workspace.find(channel.id, str(thread_ts)) is None:
                raise SlackError("thread_not_found")
            message = Message(
                ts=workspace.next_ts(),
                text=text,
                user=BOT_USER,
                bot_id=BOT_ID,
                blocks=blocks,
                metadata=meta,
                thread_ts=str(thread_ts) if thread_ts else None,
            )
            workspace.messages[channel.id].append(message)
            if thread_ts is None:
                workspace.posted_per_channel[channel.id] += 1
                payload = (meta or {}).get("event_payload") or {}
                if "kind" in payload and "id" in payload:
                    workspace.posted_per_subject[f"{payload['kind']}:{payload['id']}"] += 1
        shown = message.to_json(with_metadata=False)
        shown["subtype"] = "bot_message"
        shown["team"] = TEAM
        return {"ok": True, "channel": channel.id, "ts": message.ts, "message": shown}

    def update_message(args: dict[str, Any]) -> dict[str, Any]:
        channel = channel_by_id(args.get("channel"))  # chat.update needs the id, not a name
        ts = str(args.get("ts") or "")
        text = args.get("text")
        blocks = _blocks(args.get("blocks"))
        meta = _metadata(args.get("metadata"))
        if text is not None and len(str(text)) > MAX_TEXT:
            raise SlackError("msg_too_long")
        with workspace.lock:
            message = workspace.find(channel.id, ts)
            if message is None:
                raise SlackError("message_not_found")
            if message.user != BOT_USER:
                raise SlackError("cant_update_message")
            if text is not None:
                message.text = str(text)
            if blocks is not None:
                message.blocks = blocks
            if meta is not None:
                message.metadata = meta
            if not message.text and not message.blocks:
                raise SlackError("no_text")
            message.edited_ts = workspace.next_ts()
            message.updates += 1
            shown = {"type": "message", "text": message.text, "user": BOT_USER, "bot_id": BOT_ID}
        return {"ok": True, "channel": channel.id, "ts": ts, "text": message.text, "message": shown}

    def history(args: dict[str, Any]) -> dict[str, Any]:
        channel = channel_by_id(args.get("channel"))
        if not channel.bot_is_member:
            raise SlackError("not_in_channel")
        try:
            served = history_limits(workspace.distribution)
            limit = min(max(int(args.get("limit") or served.default_page), 1), served.max_page)
            latest = float(args["latest"]) if args.get("latest") else math.inf
            oldest = float(args["oldest"]) if args.get("oldest") else 0.0
        except ValueError:
            raise SlackError("invalid_arg_name") from None
        inclusive = _truthy(args.get("inclusive"))
        with_metadata = _truthy(args.get("include_all_metadata"))
        if args.get("cursor"):
            latest, inclusive = float(_uncursor(str(args["cursor"]), "next_ts")), True
        with workspace.lock:
            top = [m for m in workspace.messages[channel.id] if m.thread_ts in (None, m.ts)]
            replies = {m.ts: workspace.replies(channel.id, m.ts) for m in top}
        chosen = [
            m
            for m in reversed(top)
            if (float(m.ts) < latest or (inclusive and float(m.ts) == latest))
            and (float(m.ts) > oldest or (inclusive and float(m.ts) == oldest))
        ]
        page, rest = chosen[:limit], chosen[limit:]
        answer: dict[str, Any] = {
            "ok": True,
            "messages": [_with_thread(m, replies[m.ts], with_metadata) for m in page],
            "has_more": bool(rest),
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
        }
        if rest:
            answer["response_metadata"] = {"next_cursor": _cursor("next_ts", rest[0].ts)}
        return answer

    def list_channels(args: dict[str, Any]) -> dict[str, Any]:
        types = str(args.get("types") or "public_channel").split(",")
        exclude_archived = _truthy(args.get("exclude_archived"))
        limit = min(max(int(args.get("limit") or 100), 1), 1000)
        with workspace.lock:
            visible = [
                c
                for c in sorted(workspace.channels.values(), key=lambda c: c.id)
                if ("private_channel" if c.is_private else "public_channel") in types
                and (c.bot_is_member or not c.is_private)
                and not (exclude_archived and c.is_archived)
            ]
        if args.get("cursor"):
            after = _uncursor(str(args["cursor"]), "next_id")
            visible = [c for c in visible if c.id >= after]
        page, rest = visible[:limit], visible[limit:]
        return {
            "ok": True,
            "channels": [
                {
                    "id": c.id,
                    "name": c.name,
                    "is_channel": not c.is_private,
                    "is_group": c.is_private,
                    "is_private": c.is_private,
                    "is_archived": c.is_archived,
                    "is_member": c.bot_is_member,
                    "created": c.created,
                }
                for c in page
            ],
            "response_metadata": {"next_cursor": _cursor("next_id", rest[0].id) if rest else ""},
        }

    def auth_test(args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://okrsync-fake.slack.com/",
            "team": "okrsync fake",
            "user": "okrsync",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
        }

    def open_view(args: dict[str, Any]) -> dict[str, Any]:
        trigger = str(args.get("trigger_id") or "")
        view = args.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError:
                raise SlackError("invalid_arguments") from None
        with workspace.lock:
            issued = workspace.triggers.get(trigger)
            if issued is None:
                raise SlackError(
                    "exchanged_trigger_id" if trigger in workspace.used else "invalid_trigger_id"
                )
            if workspace.clock() - issued > TRIGGER_LIFETIME:
                raise SlackError("expired_trigger_id")
        problems = _view_errors(view)
        if problems:
            raise SlackError("invalid_arguments", response_metadata={"messages": problems})
        assert isinstance(view, dict)
        with workspace.lock:
            del workspace.triggers[trigger]
            workspace.used.add(trigger)
            shown = {**view, "id": f"V{len(workspace.views) + 1:010d}", "team_id": TEAM}
            shown["state"] = {"values": {}}
            workspace.views.append(shown)
        return {"ok": True, "view": shown}

    def user_info(args: dict[str, Any]) -> dict[str, Any]:
        user = str(args.get("user") or "")
        if user not in PEOPLE:
            raise SlackError("user_not_found")
        handle, email = PEOPLE[user]
        profile = {"real_name": handle.title(), "display_name": handle, "email": email}
        return {
            "ok": True,
            "user": {
                "id": user,
                "team_id": TEAM,
                "name": handle,
                "deleted": False,
                "profile": profile,
            },
        }

    handlers = {
        "views.open": open_view,
        "users.info": user_info,
        "chat.postMessage": post_message,
        "chat.update": update_message,
        "conversations.history": history,
        "conversations.list": list_channels,
        "auth.test": auth_test,
    }

    async def call(request: Request) -> Response:
        method = request.path_params["method"]
        handler = handlers.get(method)
        if handler is None:
            return JSONResponse({"ok": False, "error": "unknown_method"}, status_code=404)
        try:
            args, is_json = await arguments(request)
            authenticate(request, args, is_json)
            key = method
            if method == "chat.postMessage":
                key = f"{method}:{args.get('channel')}"
            wait = workspace.throttle(key, method)
            if wait is not None:
                return JSONResponse(
                    {"ok": False, "error": "ratelimited"},
                    status_code=429,
                    headers={"Retry-After": str(int(wait))},
                )
            return JSONResponse(handler(args))
        except SlackError as exc:
            return JSONResponse({"ok": False, "error": exc.error, **exc.extra})

    app = Starlette(routes=[Route("/api/{method}", call, methods=["GET", "POST"])])
    app.state.slack = workspace
    return app
