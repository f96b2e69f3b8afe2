"""Adaptive Cards for a key result and for an objective digest, wrapped as a Teams message. Pure.

Only elements every Teams client renders at version 1.2 to 1.4 are used (TextBlock, Container,
FactSet, Action.OpenUrl; no ``Table``, which needs 1.5, and no ``Action.Submit``, which webhooks
cannot receive). The outer container's ``id`` (``okrsync-key_result-<id>`` or
``okrsync-objective-<id>``) names what the card shows; Teams ignores it, the fake counts by it.

A stale key result (no source confirmed it within its ``stale_after``) gets a ``Warning``-coloured
"⚠️ Stale — last confirmed …" line under its status (in a digest, on its fact); a webhook cannot
edit, so the next fresh push is simply a card without it.

A key result with linked work (issue 15) gains the line ``work: 12 done · 5 in progress · 3 to
do`` and the items done since the last push (:mod:`connectors.teams.work_blocks`); on a digest,
the line is on its fact and the items under the facts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from connectors.teams.work_blocks import done_text, work_blocks
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate, Status

CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
BAR_CELLS = 10
STATUS_LABEL = {
    Status.ON_TRACK: "On track",
    Status.AT_RISK: "At risk",
    Status.OFF_TRACK: "Off track",
    Status.NO_DATA: "No data",
}
STATUS_COLOR = {  # Adaptive Card TextBlock colours
    Status.ON_TRACK: "Good",
    Status.AT_RISK: "Warning",
    Status.OFF_TRACK: "Attention",
    Status.NO_DATA: "Default",
}


def number(value: Decimal | None) -> str:
    """Plain decimal text without exponent or trailing zeros (``1E+3`` → ``1000``)."""
    if value is None:
        return "n/a"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def percent(progress: Decimal | None) -> str:
    if progress is None:
        return "n/a"
    return f"{(progress * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)}%"


def progress_bar(progress: Decimal | None) -> str:
    """``▓▓▓▓░░░░░░`` for 0.4: ten cells, clamped to 0..1."""
    share = min(max(progress or Decimal(0), Decimal(0)), Decimal(1))
    filled = int((share * BAR_CELLS).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return "▓" * filled + "░" * (BAR_CELLS - filled)


def value_text(update: KeyResultUpdate) -> str:
    unit = f" {update.unit}" if update.unit else ""
    return f"{number(update.value)} / {number(update.target)}{unit}"


def card_id(kind: str, id: str) -> str:
    return f"okrsync-{kind}-{id}"


def observed(at: datetime) -> str:
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M UTC")


def stale_text(update: KeyResultUpdate) -> str:
    if update.checked_at is None:
        return "⚠️ Stale — no source has confirmed this value"
    return f"⚠️ Stale — last confirmed {observed(update.checked_at)}"


def _stale_block(update: KeyResultUpdate) -> dict[str, Any]:
    return {
        "type": "TextBlock",
        "text": stale_text(update),
        "color": "Warning",
        "weight": "Bolder",
        "wrap": True,
        "spacing": "None",
    }


def _status_block(status: Status) -> dict[str, Any]:
    return {
        "type": "TextBlock",
        "text": STATUS_LABEL[status],
        "color": STATUS_COLOR[status],
        "weight": "Bolder",
        "spacing": "None",
    }


def _bar(progress: Decimal | None) -> dict[str, Any]:
    return {
        "type": "TextBlock",
        "text": f"{progress_bar(progress)} {percent(progress)}",
        "fontType": "Monospace",
        "size": "Medium",
    }


def message(body: list[dict[str, Any]], version: str, link: str | None) -> dict[str, Any]:
    """The Bot Framework message a Teams webhook takes, holding one Adaptive Card."""
    card: dict[str, Any] = {
        "$schema": SCHEMA,
        "type": "AdaptiveCard",
        "version": version,
        "body": body,
        "msteams": {"width": "Full"},
    }
    if link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": link}]
    return {
        "type": "message",
        "attachments": [{"contentType": CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def _grade_facts(update: KeyResultUpdate) -> list[dict[str, str]]:
    """The latest check-in's confidence and the key result's score, when there are any."""
    facts = []
    if update.confidence is not None:
        facts.append({"title": "Confidence", "value": f"{update.confidence}/10"})
    if update.score is not None:
        facts.append({"title": "Score", "value": str(update.score.quantize(Decimal("0.01")))})
    return facts


def key_result_card(
    update: KeyResultUpdate, version: str = "1.4", link: str | None = None
) -> dict[str, Any]:
    stale = [_stale_block(update)] if update.stale else []
    container = {
        "type": "Container",
        "id": card_id("key_result", update.key_result_id),
        "items": [
            {
                "type": "TextBlock",
                "text": update.objective_title,
                "isSubtle": True,
                "size": "Small",
                "wrap": True,
            },
            {
                "type": "TextBlock",
                "text": update.key_result_title,
                "size": "Large",
                "weight": "Bolder",
                "wrap": True,
                "spacing": "None",
            },
            _bar(update.progress_display),
            _status_block(update.status),
            *stale,
            *work_blocks(update.work),
            {
                "type": "FactSet",
                "facts": [
                    {"title": "Value", "value": value_text(update)},
                    *_grade_facts(update),
                    {"title": "Cycle", "value": update.cycle_id},
                    {"title": "Observed", "value": observed(update.observed_at)},
                ],
            },
        ],
    }
    return message([container], version, link)


def _digest_done(update: ObjectiveUpdate) -> list[dict[str, Any]]:
    """Under a digest's facts, the items each key result's work got done since the last push."""
    blocks = []
    for kr in update.key_results:
        done = done_text(kr.work) if kr.work is not None else None
        if done is not None:
            blocks.append(
                {
                    "type": "TextBlock",
                    "text": f"{kr.key_result_title}: {done}",
                    "wrap": True,
                    "size": "Small",
                }
            )
    return blocks


def digest_card(
    update: ObjectiveUpdate, version: str = "1.4", link: str | None = None
) -> dict[str, Any]:
    owner = f" · owner {update.owner}" if update.owner else ""
    stale_count = sum(kr.stale for kr in update.key_results)
    stale = (
        [
            {
                "type": "TextBlock",
                "text": f"⚠️ {stale_count} of {len(update.key_results)} key results stale: "
                "not confirmed by a source within their deadline",
                "color": "Warning",
                "weight": "Bolder",
                "wrap": True,
            }
        ]
        if stale_count
        else []
    )
    container = {
        "type": "Container",
        "id": card_id("objective", update.objective_id),
        "items": [
            {
                "type": "TextBlock",
                "text": update.objective_title,
                "size": "Large",
                "weight": "Bolder",
                "wrap": True,
            },
            _bar(update.progress),
            _status_block(update.status),
            {
                "type": "FactSet",
                "facts": [
                    {
                        "title": kr.key_result_title,
                        "value": f"{percent(kr.progress_display)} · "
                        f"{STATUS_LABEL[kr.status].lower()} · {value_text(kr)}"
                        + "".join(f" · {f['title'].lower()} {f['value']}" for f in _grade_facts(kr))
                        + (f" · {stale_text(kr)}" if kr.stale else "")
                        + (f" · {kr.work.line()}" if kr.work is not None else ""),
                    }
                    for kr in update.key_results
                ],
            },
            *stale,
            *_digest_done(update),
            {
                "type": "TextBlock",
                "text": f"Cycle {update.cycle_id}{owner} · observed {observed(update.observed_at)}",
                "isSubtle": True,
                "size": "Small",
                "wrap": True,
            },
        ],
    }
    return message([container], version, link)
