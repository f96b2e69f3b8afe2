"""The work behind a key result on a Teams card (issue 15). Pure.

A key result with linked work gains a TextBlock ``work: 12 done · 5 in progress · 3 to do`` and,
when items were done since the mirror's previous push, one linking them in the markdown subset
TextBlocks render (``[OKR-7](url) Ship it``). A digest shows the line on each key result's fact.
"""

from __future__ import annotations

from typing import Any

from okrsync.sdk.work_summary import WorkSummary, web_url


def _markdown_text(text: str) -> str:
    """Text that Teams' markdown subset shows as written (no emphasis, no link)."""
    for char in "\\[]()*_~`":
        text = text.replace(char, "\\" + char)
    return text


def done_text(work: WorkSummary) -> str | None:
    """``Done since the last update: [OKR-7](url) Ship it, …``; None when nothing was."""
    if not work.done_recently:
        return None
    named = []
    for item in work.done_recently:
        url = web_url(item.url)
        key = _markdown_text(item.key)
        link = f"[{key}]({url.replace('(', '%28').replace(')', '%29')})" if url else key
        named.append(f"{link} {_markdown_text(item.title)}")
    more = work.more_done()
    return f"Done since the last update: {', '.join(named)}" + (f" and {more} more" if more else "")


def work_blocks(work: WorkSummary | None) -> list[dict[str, Any]]:
    """The TextBlocks a key result's card gains for its work (none without work)."""
    if work is None:
        return []
    blocks: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": work.line(), "wrap": True, "spacing": "Small"}
    ]
    done = done_text(work)
    if done is not None:
        blocks.append(
            {"type": "TextBlock", "text": done, "wrap": True, "size": "Small", "spacing": "None"}
        )
    return blocks
