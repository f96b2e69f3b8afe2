"""Slack's side of check-ins: request signatures, the ``/okr`` command, the modal, reminders.

Slack signs every request it sends an app: ``X-Slack-Signature: v0=<hex>``, the HMAC-SHA256 of
``v0:<X-Slack-Request-Timestamp>:<raw body>`` keyed with the app's signing secret. A request is
accepted only with a matching signature (compared in constant time) and a timestamp within
:data:`MAX_SKEW` of now, which keeps a captured request from being replayed later.

A slash command arrives form-encoded (``token``, ``team_id``, ``user_id``, ``user_name``,
``command``, ``text``, ``response_url``, ``trigger_id``, …); an interaction arrives form-encoded
too, as one field ``payload`` holding JSON (``type: view_submission``, ``user``, ``view`` with its
``callback_id`` and ``state.values[block_id][action_id]``). Everything here is pure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from okrsync.sdk.chat import ChatUser, Command, KeyResultChoice, Reminder, Submission

MAX_SKEW = 5 * 60  # seconds: Slack's own advice
CALLBACK_ID = "okrsync_check_in"
MAX_OPTIONS = 100  # a static_select takes at most 100 options
TITLE = "OKR check-in"  # a modal's title: at most 24 characters


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v0=<hex>``: Slack's ``X-Slack-Signature`` for ``body`` sent at ``timestamp``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers Slack sends with ``body`` (what the fake uses to play Slack)."""
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": signature(secret, str(timestamp), body),
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    """Whether ``body`` was signed with ``secret`` less than :data:`MAX_SKEW` from ``now``.

    ``headers`` must look names up case-insensitively (Starlette's and httpx's do).
    """
    timestamp = headers.get("x-slack-request-timestamp", "")
    given = headers.get("x-slack-signature", "")
    if not timestamp.isascii() or not timestamp.isdigit() or not given.startswith("v0="):
        return False
    if abs(now - int(timestamp)) > MAX_SKEW:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body).encode(), given.encode())


def _form(body: bytes) -> dict[str, str]:
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def read_command(body: bytes) -> Command | None:
    """A slash command's fields, or None when a field Slack always sends is missing."""
    form = _form(body)
    user_id, trigger_id = form.get("user_id"), form.get("trigger_id")
    if not user_id or not trigger_id or not form.get("command"):
        return None
    user = ChatUser(user_id, form.get("user_name") or None)
    return Command(user, form.get("text", ""), trigger_id)


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": text if len(text) <= limit else text[: limit - 1] + "…"}


def _input(block_id: str, label: str, element: dict[str, Any], *, optional: bool) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": _plain(label, 2000),
        "element": {**element, "action_id": block_id},
    }
    if optional:
        block["optional"] = True
    return block


def check_in_view(choices: Sequence[KeyResultChoice]) -> dict[str, Any]:
    """The check-in modal: key result (static select), value, confidence 1 to 10, note."""
    options = []
    for choice in choices[:MAX_OPTIONS]:
        hint = f" (now {choice.current})" if choice.current is not None else ""
        options.append(
            {
                "text": _plain(f"{choice.title}{hint}", 75),
                "value": choice.id,
                "description": _plain(choice.objective_title, 75),
            }
        )
    blocks: list[dict[str, Any]] = [
        _input(
            "key_result",
            "Key result",
            {
                "type": "static_select",
                "placeholder": _plain("Choose a key result", 150),
                "options": options,
            },
            optional=False,
        ),
        _input(
            "value",
            "Value",
            {"type": "number_input", "is_decimal_allowed": True},
            optional=True,
        ),
        _input(
            "confidence",
            "Confidence (1-10)",
            {
                "type": "number_input",
                "is_decimal_allowed": False,
                "min_value": "1",
                "max_value": "10",
            },
            optional=True,
        ),
        _input(
            "note",
            "Note",
            {"type": "plain_text_input", "multiline": True, "max_length": 3000},
            optional=True,
        ),
    ]
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "title": _plain(TITLE, 24),
        "submit": _plain("Check in", 24),
        "close": _plain("Cancel", 24),
        "blocks": blocks,
    }


def no_key_results_view(user: ChatUser) -> dict[str, Any]:
    """The modal shown to someone who owns no key result."""
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID + "_none",
        "title": _plain(TITLE, 24),
        "close": _plain("Close", 24),
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"<@{user.id}> owns no objective with a key result to check in on.",
                },
            }
        ],
    }


def _state_value(values: Mapping[str, Any], block: str) -> str | None:
    element = values.get(block, {}).get(block)
    if not isinstance(element, dict):
        return None
    if element.get("type") == "static_select":
        selected = element.get("selected_option")
        return (
            str(selected["value"]) if isinstance(selected, dict) and "value" in selected else None
        )
    value = element.get("value")
    return None if value is None or value == "" else str(value)


def read_submission(body: bytes) -> Submission | None:
    """The check-in modal's submission, or None for any other interaction (or a broken one)."""
    raw = _form(body).get("payload")
    if raw is None:
        return None
    try:
        payload = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("type") != "view_submission":
        return None
    view, user = payload.get("view"), payload.get("user")
    if not isinstance(view, dict) or view.get("callback_id") != CALLBACK_ID:
        return None
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        return None
    state = view.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    if not isinstance(values, dict):
        return None
    name = user.get("username") or user.get("name")
    return Submission(
        user=ChatUser(user["id"], str(name) if name else None),
        key_result_id=_state_value(values, "key_result"),
        value=_state_value(values, "value"),
        confidence=_state_value(values, "confidence"),
        note=_state_value(values, "note"),
    )


def refusal(errors: Mapping[str, str]) -> dict[str, object]:
    """``response_action: errors``: each message under its input block."""
    return {"response_action": "errors", "errors": dict(errors)}


def reminder_message(reminder: Reminder, check_in_url: str | None) -> dict[str, Any]:
    """``chat.postMessage``'s text and blocks for a reminder: the owner, each key result and why,
    then a button to the dashboard (``check_in_url``) or the ``/okr`` hint."""
    who = f"{reminder.owner}: " if reminder.owner else ""
    lines = "\n".join(f"• *{line.title}* ({line.reason})" for line in reminder.lines)
    text = f"{who}time for an OKR check-in on {len(reminder.lines)} key result(s)"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{text}\n{lines}"[:3000]}},
    ]
    if check_in_url:
        button = {
            "type": "button",
            "text": _plain("Check in", 75),
            "url": check_in_url,
            "action_id": "okrsync_check_in_link",
        }
        blocks.append({"type": "actions", "elements": [button]})
    else:
        hint = {"type": "mrkdwn", "text": "Type `/okr` to check in."}
        blocks.append({"type": "context", "elements": [hint]})
    return {"text": text, "blocks": blocks}
