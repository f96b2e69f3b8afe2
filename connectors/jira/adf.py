"""The comment okrsync keeps on an issue, in Atlassian Document Format (REST v3) or text (v2).

One comment per key result, edited in place. It carries a visible marker,
``[okrsync:kr=<key result id>]``, so that after a crash that lost the comment id the sink can
still find its own comment among the issue's comments instead of posting a second one.

A stale key result (no source confirmed it within its ``stale_after``) gets a warning under the
heading, "Stale — last confirmed <time>": an ADF ``warning`` panel, or ``(!)`` in wiki text. The
next fresh push edits the comment without it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from okrsync.sdk.models import KeyResultUpdate, Status

BAR_WIDTH = 20
STATUS_TEXT = {
    Status.ON_TRACK: "On track",
    Status.AT_RISK: "At risk",
    Status.OFF_TRACK: "Off track",
    Status.NO_DATA: "No data",
}


def marker(key_result_id: str) -> str:
    return f"[okrsync:kr={key_result_id}]"


def number_text(value: Decimal | None, unit: str | None = None) -> str:
    if value is None:
        return "n/a"
    text = format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
    return _with_unit(text, unit)


def _with_unit(text: str, unit: str | None) -> str:
    if unit in ("%", "percent"):
        return f"{text}%"
    return f"{text} {unit}" if unit else text


def kr_number_text(update: KeyResultUpdate, value: Decimal | None) -> str:
    """The key result's value, start or target as people read it (its ``decimals``), with unit."""
    text = update.display(value)
    return "n/a" if text is None else _with_unit(text, update.unit)


def percent(progress: Decimal | None) -> Decimal | None:
    """Progress as a percentage with one decimal (unclamped: 120% shows over-achievement)."""
    if progress is None:
        return None
    return (progress * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def progress_bar(display: Decimal | None, width: int = BAR_WIDTH) -> str:
    """``▓▓▓▓▓░░░░░`` for a progress between 0 and 1 (clamped for display)."""
    if display is None:
        return "░" * width
    share = min(Decimal(1), max(Decimal(0), display))
    filled = int((share * width).to_integral_value(rounding=ROUND_HALF_UP))
    return "▓" * filled + "░" * (width - filled)


def utc_text(at: datetime) -> str:
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M UTC")


def stale_detail(update: KeyResultUpdate) -> str | None:
    """What follows "Stale" while no source has confirmed the value in time (else None)."""
    if not update.stale:
        return None
    if update.checked_at is None:
        return " — no source has confirmed this value"
    return f" — last confirmed {utc_text(update.checked_at)}"


def summary_lines(update: KeyResultUpdate) -> tuple[str, str, str, str]:
    """Heading, bar line, value line, footer: the same words in ADF and in plain text."""
    heading = f"OKR · {update.key_result_title}"
    shown = percent(update.progress)
    bar = (
        f"{progress_bar(update.progress_display)} {number_text(shown)}%"
        if shown is not None
        else (f"{progress_bar(None)} no data")
    )
    value_line = (
        f"{kr_number_text(update, update.value)} of {kr_number_text(update, update.target)}"
        f" · {STATUS_TEXT[update.status]}"
    )
    footer = (
        f"Objective: {update.objective_title} · cycle {update.cycle_id} · "
        f"updated {update.observed_at.strftime('%Y-%m-%d %H:%M UTC')} by okrsync "
        f"{marker(update.key_result_id)}"
    )
    return heading, bar, value_line, footer


def _text(text: str, *marks: str) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": text}
    if marks:
        node["marks"] = [{"type": mark} for mark in marks]
    return node


def comment_document(update: KeyResultUpdate) -> dict[str, Any]:
    """The comment body as an ADF ``doc`` (heading, code-styled bar, value vs target, footer)."""
    heading, bar, value_line, footer = summary_lines(update)
    stale = stale_detail(update)
    warning: list[dict[str, Any]] = []
    if stale is not None:
        paragraph = {"type": "paragraph", "content": [_text("Stale", "strong"), _text(stale)]}
        warning.append({"type": "panel", "attrs": {"panelType": "warning"}, "content": [paragraph]})
    return {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "heading", "attrs": {"level": 3}, "content": [_text(heading)]},
            *warning,
            {"type": "paragraph", "content": [_text(bar, "code")]},
            {"type": "paragraph", "content": [_text(value_line, "strong")]},
            {"type": "paragraph", "content": [_text(footer, "em")]},
        ],
    }


def comment_text(update: KeyResultUpdate) -> str:
    """The same comment for REST v2 (Data Center), whose comment bodies are wiki-markup text."""
    heading, bar, value_line, footer = summary_lines(update)
    stale = stale_detail(update)
    warning = "" if stale is None else f"(!) *Stale*{stale}\n"
    return f"h3. {heading}\n{warning}{{{{{bar}}}}}\n*{value_line}*\n_{footer}_"


def text_of(body: Any) -> str:
    """All text in an ADF node (or the string itself): where the marker is looked for."""
    if isinstance(body, str):
        return body
    if isinstance(body, dict):
        own = body.get("text")
        return (own if isinstance(own, str) else "") + "".join(
            text_of(child) for child in body.get("content") or []
        )
    if isinstance(body, list):
        return "".join(text_of(item) for item in body)
    return ""
