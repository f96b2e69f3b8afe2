"""Block Kit layout of a key result (or an objective digest) and the state kept in its metadata.

Pure functions, no I/O. Block Kit limits that matter here (Slack's block reference): 50 blocks a
message, 150 characters of header text, 3000 characters of section text, 10 context elements.
Status has no colour in Block Kit (only legacy attachments have ``color``), so it is an emoji.

The message carries Slack *message metadata* ``{"event_type": "okrsync_state", "event_payload":
{...}}``: which key result/objective it shows and the progress and status it showed. That is how
a lost reference finds its message again and how thread alerts know what changed, without asking
the core for the previous state.

A *stale* key result (no source confirmed its value within its ``stale_after``) keeps its number
but gains a ``:warning: Stale — last confirmed <time>`` line, and its metadata ``"stale": true``;
the next fresh push edits the line away again.

A key result with linked work (issue 15) gains the line ``work: 12 done · 5 in progress · 3 to
do`` and the items done since the last push (:mod:`connectors.slack.work_text`), in its message
and on its digest line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from connectors.slack.work_text import work_lines
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate, Status

EVENT_TYPE = "okrsync_state"
MAX_BLOCKS = 50
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
BAR_CELLS = 10
THRESHOLDS = (Decimal("0.25"), Decimal("0.5"), Decimal("0.75"), Decimal(1))
ALERT_STATUSES = (Status.AT_RISK, Status.OFF_TRACK)

STATUS_EMOJI = {
    Status.ON_TRACK: ":large_green_circle:",
    Status.AT_RISK: ":large_yellow_circle:",
    Status.OFF_TRACK: ":red_circle:",
    Status.NO_DATA: ":white_circle:",
}
STATUS_LABEL = {
    Status.ON_TRACK: "On track",
    Status.AT_RISK: "At risk",
    Status.OFF_TRACK: "Off track",
    Status.NO_DATA: "No data",
}


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def number(value: Decimal | None) -> str:
    """Plain decimal text without exponent or trailing zeros (``1E+3`` → ``1000``)."""
    if value is None:
        return "n/a"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def percent(progress: Decimal | None) -> str:
    if progress is None:
        return "n/a"
    whole = (progress * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return f"{whole}%"


def progress_bar(progress: Decimal | None) -> str:
    """``▓▓▓▓░░░░░░`` for 0.4: ten cells, rounded to the nearest cell, clamped to 0..1."""
    share = min(max(progress or Decimal(0), Decimal(0)), Decimal(1))
    filled = int((share * BAR_CELLS).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return "▓" * filled + "░" * (BAR_CELLS - filled)


def escape(text: str) -> str:
    """Slack mrkdwn needs only these three escaped (its formatting reference)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def value_text(update: KeyResultUpdate) -> str:
    unit = f" {update.unit}" if update.unit else ""
    return f"{number(update.value)} / {number(update.target)}{unit}"


def status_text(status: Status) -> str:
    return f"{STATUS_EMOJI[status]} {STATUS_LABEL[status]}"


def utc(at: datetime) -> datetime:
    """``at`` in UTC (a naive time is taken to be UTC already, as the store writes it)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def observed_text(at: datetime) -> str:
    """Slack's date token: every reader sees the time in their own zone; the fallback is UTC."""
    at = utc(at)
    fallback = at.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def stale_text(update: KeyResultUpdate) -> str:
    """The warning beside a number no source has confirmed within its ``stale_after``."""
    if update.checked_at is None:
        return ":warning: *Stale* — no source has confirmed this value"
    return f":warning: *Stale* — last confirmed {observed_text(update.checked_at)}"


def stale_plain(update: KeyResultUpdate) -> str:
    """The same warning for the notification text, which shows no date tokens."""
    if update.checked_at is None:
        return "stale, never confirmed"
    return f"stale, last confirmed {utc(update.checked_at).strftime('%Y-%m-%d %H:%M UTC')}"


def grade_text(update: KeyResultUpdate) -> str:
    """``Confidence 7/10 · score 0.70``: what the latest check-in and the grading say, or ''."""
    parts = []
    if update.confidence is not None:
        parts.append(f"Confidence {update.confidence}/10")
    if update.score is not None:
        parts.append(f"score {update.score.quantize(Decimal('0.01'))}")
    return " · ".join(parts)


def context_block(cycle_id: str, observed_at: datetime, link: str | None) -> dict[str, Any]:
    parts = [f"Cycle *{escape(cycle_id)}*", f"observed {observed_text(observed_at)}"]
    if link:
        parts.append(f"<{link}|Open>")
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(parts)}]}


def key_result_blocks(update: KeyResultUpdate, link: str | None = None) -> list[dict[str, Any]]:
    progress = update.progress_display
    body = f"_{escape(update.objective_title)}_\n`{progress_bar(progress)}` *{percent(progress)}*"
    if update.stale:
        body += f"\n{stale_text(update)}"
    if grade := grade_text(update):
        body += f"\n{grade}"
    if update.work is not None:
        body += f"\n{work_lines(update.work)}"
    return [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": clip(update.key_result_title, HEADER_LIMIT),
                "emoji": True,
            },
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": clip(body, SECTION_LIMIT)},
            "fields": [
                {"type": "mrkdwn", "text": f"*Value*\n{escape(value_text(update))}"},
                {"type": "mrkdwn", "text": f"*Status*\n{status_text(update.status)}"},
            ],
        },
        context_block(update.cycle_id, update.observed_at, link),
    ]


def key_result_text(update: KeyResultUpdate) -> str:
    """The notification fallback (``text``): what a phone's lock screen shows."""
    text = (
        f"{update.key_result_title}: {percent(update.progress_display)} "
        f"({value_text(update)}), {STATUS_LABEL[update.status].lower()}"
    )
    return f"{text} ({stale_plain(update)})" if update.stale else text


def digest_blocks(update: ObjectiveUpdate, link: str | None = None) -> list[dict[str, Any]]:
    owner = f" · owner *{escape(update.owner)}*" if update.owner else ""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": clip(update.objective_title, HEADER_LIMIT),
                "emoji": True,
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"`{progress_bar(update.progress)}` *{percent(update.progress)}* "
                f"{status_text(update.status)}{owner}",
            },
        },
        {"type": "divider"},
    ]
    room = MAX_BLOCKS - len(blocks) - 1  # keep one for the context line
    shown = (
        update.key_results if len(update.key_results) <= room else update.key_results[: room - 1]
    )
    for kr in shown:
        line = (
            f"{STATUS_EMOJI[kr.status]} *{escape(kr.key_result_title)}*\n"
            f"`{progress_bar(kr.progress_display)}` {percent(kr.progress_display)} · "
            f"{escape(value_text(kr))}"
        )
        if grade := grade_text(kr):
            line += f" · {grade}"
        if kr.stale:
            line += f"\n{stale_text(kr)}"
        if kr.work is not None:
            line += f"\n{work_lines(kr.work)}"
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(line, SECTION_LIMIT)}}
        )
    hidden = len(update.key_results) - len(shown)
    if hidden:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"_…and {hidden} more_"}}
        )
    blocks.append(context_block(update.cycle_id, update.observed_at, link))
    return blocks


def digest_text(update: ObjectiveUpdate) -> str:
    stale = sum(kr.stale for kr in update.key_results)
    stale_note = f", {stale} stale" if stale else ""
    return (
        f"{update.objective_title}: {percent(update.progress)}, "
        f"{STATUS_LABEL[update.status].lower()} ({len(update.key_results)} key results{stale_note})"
    )


# --- metadata: what the message shows, readable back ---------------------------------------


def state_payload(
    kind: str,
    id: str,
    cycle_id: str,
    progress: Decimal | None,
    status: Status,
    *,
    stale: bool = False,
) -> dict[str, Any]:
    """What the message shows. ``"stale": true`` is present only while stale, so a fresh state
    reads the same as one written before staleness existed, and a stale/fresh flip is a change."""
    payload: dict[str, Any] = {
        "kind": kind,
        "id": id,
        "cycle": cycle_id,
        "progress": None if progress is None else number(progress),
        "status": status.value,
    }
    if stale:
        payload["stale"] = True
    return payload


def key_result_state(update: KeyResultUpdate) -> dict[str, Any]:
    return state_payload(
        "key_result",
        update.key_result_id,
        update.cycle_id,
        update.progress_display,
        update.status,
        stale=update.stale,
    )


def objective_state(update: ObjectiveUpdate) -> dict[str, Any]:
    """A digest's state: stale while any of its key results is."""
    return state_payload(
        "objective",
        update.objective_id,
        update.cycle_id,
        update.progress,
        update.status,
        stale=any(kr.stale for kr in update.key_results),
    )


def metadata(payload: dict[str, Any]) -> dict[str, Any]:
    return {"event_type": EVENT_TYPE, "event_payload": payload}


def is_ours(message: dict[str, Any], kind: str, id: str, cycle_id: str) -> bool:
    """Whether a message from ``conversations.history`` is this mirror's living message."""
    meta = message.get("metadata")
    if not isinstance(meta, dict) or meta.get("event_type") != EVENT_TYPE:
        return False
    payload = meta.get("event_payload")
    return (
        isinstance(payload, dict)
        and payload.get("kind") == kind
        and payload.get("id") == id
        and payload.get("cycle") == cycle_id
    )


def payload_of(message: dict[str, Any]) -> dict[str, Any] | None:
    meta = message.get("metadata")
    if isinstance(meta, dict) and meta.get("event_type") == EVENT_TYPE:
        payload = meta.get("event_payload")
        if isinstance(payload, dict):
            return payload
    return None


def alerts(previous: dict[str, Any] | None, update: KeyResultUpdate) -> list[str]:
    """Thread replies owed for the move from ``previous`` (a state payload) to ``update``.

    Nothing without a previous state: the first message already says where things stand.
    Staleness is never a reason for an alert: it moves neither progress nor status, and the
    ``stale`` flag in ``previous`` is not read here (the message itself shows it).
    """
    if previous is None:
        return []
    texts: list[str] = []
    try:
        old = Decimal(str(previous["progress"])) if previous.get("progress") is not None else None
    except (ArithmeticError, ValueError):
        old = None
    new = update.progress_display
    if old is not None and new is not None:
        for threshold in THRESHOLDS:
            if old < threshold <= new:
                texts.append(
                    f":tada: *{escape(update.key_result_title)}* reached {percent(threshold)} "
                    f"({escape(value_text(update))})"
                )
    old_status = previous.get("status")
    if update.status in ALERT_STATUSES and old_status != update.status.value:
        texts.append(
            f"{STATUS_EMOJI[update.status]} *{escape(update.key_result_title)}* is now "
            f"{STATUS_LABEL[update.status].lower()} at {percent(new)}"
        )
    return texts
